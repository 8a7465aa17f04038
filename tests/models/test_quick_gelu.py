"""Every OpenAI backbone is built with QuickGELU, as its weights were trained (open_clip >= 2.29
builds nn.GELU from the model config alone). Offline: the weight download and loading are stubbed,
everything else runs as in a real run."""
import warnings

import pytest
import torch

from ltbench.models.backbones import parse_backbone
from ltbench.models.clip import _open_clip, resolve_quick_gelu
from ltbench.models.factory import backbone_details, create_backbone

open_clip = _open_clip()
QuickGELU = open_clip.transformer.QuickGELU
OPENAI_TAGS = [model for model, tag in open_clip.list_pretrained() if tag == "openai"]


@pytest.fixture(autouse=True)
def weights_found(monkeypatch):
    """Every tag's weights count as cached, so a build goes on to open_clip (stubbed below or in
    the test) instead of stopping at ltbench's offline check (models/weights.py)."""
    from pathlib import Path

    from ltbench.models import weights

    monkeypatch.setattr(weights, "find_cached", lambda files: Path("stub-checkpoint") if files else None)


@pytest.fixture
def no_download(monkeypatch):
    """Pretrained tags build their architecture with random weights: nothing is fetched or loaded."""
    import open_clip.factory as factory

    monkeypatch.setattr(factory, "download_pretrained", lambda cfg, **kwargs: "stub-checkpoint")
    monkeypatch.setattr(factory, "load_checkpoint", lambda model, path, **kwargs: None)


def _activations(module):
    return {type(m) for m in module.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))}


def test_openai_tags_are_all_listed():
    # RN50, RN101, RN50x4/16/64, ViT-B-32/16, ViT-L-14(-336) and their -quickgelu twins.
    assert {"RN50", "RN101", "RN50x16", "ViT-B-32", "ViT-B-16", "ViT-L-14"} <= set(OPENAI_TAGS)


@pytest.mark.parametrize("model", OPENAI_TAGS)
def test_every_openai_tag_asks_open_clip_for_quick_gelu(model, monkeypatch):
    seen = {}

    def capture(name, **kwargs):  # stands in for the build: the big models are too slow on CPU
        seen.update(kwargs, name=name)
        raise RuntimeError("captured")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", capture)
    with pytest.raises(Exception, match="captured"):
        create_backbone(f"{model}:openai")
    assert seen["name"] == model and seen["pretrained"] == "openai" and seen["force_quick_gelu"] is True
    assert backbone_details(f"{model}:openai") == {"activation": "quick_gelu"}


@pytest.mark.slow  # builds RN50 and ViT-B-32: outside the inner loop
@pytest.mark.parametrize("model, towers", [("RN50", ("text",)), ("ViT-B-32", ("text", "visual"))])
def test_openai_models_build_quick_gelu_towers(model, towers, no_download):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # open_clip's QuickGELU mismatch warning would fail the test
        clip = create_backbone(f"{model}:openai")
    assert clip.activation == "quick_gelu"
    assert _activations(clip.model.transformer) == {QuickGELU}
    visual = _activations(clip.model.visual)
    assert visual == ({QuickGELU} if "visual" in towers else set())  # ModifiedResNet: ReLU only


def test_a_laion_tag_builds_gelu(no_download):
    assert not open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k").get("quick_gelu", False)
    clip = create_backbone("ViT-B-32:laion2b_s34b_b79k")
    assert clip.activation == "gelu"
    assert _activations(clip.model.transformer) == _activations(clip.model.visual) == {torch.nn.GELU}
    # Some non-OpenAI tags were trained with QuickGELU too: their config says so, and is followed.
    assert resolve_quick_gelu(parse_backbone("ViT-B-32:laion400m_e31"))


@pytest.mark.slow  # builds and saves models: outside the inner loop
def test_quick_gelu_checkpoints_load_by_the_quickgelu_name(tmp_path):
    assert "RN50-quickgelu" in open_clip.list_models()
    torch.manual_seed(0)
    source = create_backbone("RN50-quickgelu:none")
    path = tmp_path / "rn50.pt"
    torch.save(source.model.state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = create_backbone(f"RN50-quickgelu:{path}")
    assert loaded.activation == "quick_gelu" and _activations(loaded.model.transformer) == {QuickGELU}
    assert loaded.visual_fingerprint() == source.visual_fingerprint()
    # The same file in the GELU architecture loads, with one warning that names the fix; the
    # caches tell the two builds apart.
    with pytest.warns(UserWarning, match=rf"'RN50-quickgelu:{path}'") as caught:
        gelu = create_backbone(f"RN50:{path}")
    assert len([w for w in caught if "QuickGELU" in str(w.message)]) == 1
    assert gelu.activation == "gelu" and gelu.text_fingerprint() != loaded.text_fingerprint()


def test_tiny_is_gelu_and_records_it():
    assert backbone_details("tiny") == {"activation": "gelu"}
    assert backbone_details("timm:resnet18:none") == {}


def test_record_states_the_activation_and_rules_are_no_options(run_cli, tmp_path):
    import json

    out = tmp_path / "results"
    code, _, stderr = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", out,
                              "--no-progress")
    assert code == 0, stderr
    record = json.loads(next((out / "runs").rglob("*.json")).read_text())
    assert record["details"]["backbone"] == {"activation": "gelu"}
    assert record["shot_counts"] == record["class_counts"]  # digits_lt names no reference profile
    # How towers are built and images resized is one rule each, not an option: not in the config.
    assert "activation" not in record["config"]["backbone"] and "resize" not in record["config"]
    for option, message in (("backbone.activation=gelu", "unknown config key 'backbone.activation'"),
                            ("resize=torch", "unknown config key 'resize'")):
        code, _, stderr = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", out,
                                  "--no-progress", "--cfg-options", option)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1


def test_model_building_quiets_only_hub_retries_and_the_asked_for_random_init(caplog):
    import logging

    from ltbench.models.backbones import quiet_hub_retries

    with caplog.at_level(logging.WARNING), quiet_hub_retries(("No pretrained weights loaded",)):
        logging.warning("QuickGELU mismatch between final model config and pretrained tag")
        logging.warning("Missing keys: text_projection")
        logging.warning("No pretrained weights loaded for model 'RN50'. Model initialized randomly.")
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s")
    assert [record.getMessage() for record in caplog.records] == [
        "QuickGELU mismatch between final model config and pretrained tag", "Missing keys: text_projection"]
    logging.warning("No pretrained weights loaded, after the build")  # the filter is gone again
    assert caplog.records[-1].getMessage() == "No pretrained weights loaded, after the build"
