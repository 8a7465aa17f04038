"""clip_ensemble: combine the test predictions of several members, e.g. "DeiT-S + CLIP".

A member is a finished run's record (its ``--save-logits`` file is read back) or a method name
computed in this run with its own defaults for this dataset, backbone and seed (``zeroshot`` =
``zeroshot_clip``, ``ballad``, ...). The combination rule and the weights are those of
``ltbench.engine.ensembles``.
"""
import numpy as np

from ltbench.api import METHODS, Method, Option, UserError
from ltbench.api.ensembles import ensemble_for, is_saved_run, logits_source, source_backbone_label
from ltbench.api.options import ENSEMBLE
from ltbench.api.training import PerSplit

ALIASES = {"zeroshot": "zeroshot_clip"}
ROLE = "member"  # how the errors name a member
OPTIONS = {
    "members": Option(list, items=str, min_length=2, nullable=True,
                      help="run records (.json written with --save-logits) or method names, at least two (required)"),
    "ensemble": ENSEMBLE,
}


def _members(cfg: dict) -> list:
    members = cfg["members"]
    if members is None:
        raise UserError("members=null: an ensemble needs at least two members, e.g. "
                        "--cfg-options members=[runs/deit_s.json,zeroshot]")
    return [_resolved(spec) for spec in members]


def _resolved(spec: str) -> str:
    """A member's spec with its alias resolved (zeroshot -> zeroshot_clip)."""
    name = ALIASES.get(spec, spec)
    if name == "clip_ensemble":
        raise UserError("an ensemble member cannot be clip_ensemble itself; give its members instead")
    return name


@METHODS.register_module(name="clip_ensemble")
class ClipEnsemble(Method):
    """Ensemble of finished runs (saved logits) and CLIP methods computed in the run: weighted mean of probabilities or logit-adjusted logits, weights chosen on val."""

    options = OPTIONS

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.members = [logits_source(spec, cfg, role=ROLE) for spec in _members(cfg)]

    @classmethod
    def backbone_label_for(cls, cfg: dict) -> str:
        """The members' labels joined by '+'; a saved member's comes from its record (read, no model built)."""
        return "+".join(source_backbone_label(spec, cfg, role=ROLE) for spec in _members(cfg))

    @classmethod
    def source_records(cls, cfg: dict) -> list:
        return [spec for spec in _members(cfg) if is_saved_run(spec)]

    def fit(self, data, ctx):
        self._member_logits = PerSplit(lambda split: [member.logits(split) for member in self.members])
        self.ensemble = ensemble_for(self.cfg["ensemble"], len(self.members), data)  # checked before members train
        for member in self.members:
            with ctx.timer(f"member {member.name}"):
                member.fit(data, ctx)
        if "val" in data.splits:
            val = data.split("val")
            self.ensemble.fit(self._member_logits(val), val.labels)
        eval_split = data.split(self.cfg["eval_split"])
        ctx.outputs.details["ensemble"] = self.ensemble.summary([member.name for member in self.members],
                                                        self.ensemble.weights_origin(data, eval_split, ctx))
        ctx.log("ensemble weights: " + ", ".join(f"{member.name} {weight:.2f}"
                                                 for member, weight in zip(self.members, self.ensemble.weights)))

    def predict(self, split, ctx) -> np.ndarray:
        # Every member's logits once per split (val serves the weights and the val metrics).
        return self.ensemble(self._member_logits(split))
