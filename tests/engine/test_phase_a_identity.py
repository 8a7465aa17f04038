"""BALLAD phase A's stage identity names its negatives scheme (issue 18): phase As trained under
torchrun with local negatives, before the global-batch change, are not reused."""
from ltbench.config import config_hash
from ltbench.engine.finetune import phase_a_identity

CFG = {"dataset": {"name": "digits_lt"}, "backbone": {"clip": "tiny"}, "text": {"templates": "simple"},
       "amp": False, "jpeg_draft": False, "phase_a": {"epochs": 2, "loss": "contrastive", "checkpoint": None}}


def test_phase_a_identity_records_global_batch_negatives():
    identity = phase_a_identity(CFG, "fp32")
    assert identity["negatives"] == "global batch"
    before_the_change = {key: value for key, value in identity.items() if key != "negatives"}
    assert config_hash(before_the_change) != config_hash(identity)  # old folders are not found
    assert "checkpoint" not in identity["phase_a"]
