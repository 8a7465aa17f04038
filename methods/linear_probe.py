"""Linear probe: a linear or cosine head trained on frozen, cached image features."""
import numpy as np
import torch

from ltbench.api import (
    METHODS,
    TRAINING,
    Method,
    Option,
    Section,
    TensorBatches,
    TrainingProgress,
    UserError,
    build_loss,
    build_sampler,
    create_backbone,
    image_features,
    seeded,
    templates_by_name,
    text_classifier,
)
from ltbench.api.calibration import save_linear_head
from ltbench.api.heads import build_head
from ltbench.api.options import LOSS
from ltbench.api.training import ValAccuracyLog


def _one_feature_space(head: dict, path: str):
    if head["standardize"] and head["init_from_text"]:
        raise UserError("head.standardize and head.init_from_text exclude each other: the text "
                        "classifier lives in the raw feature space")


OPTIONS = {
    "head": Section({
        "type": Option(str, choices=("linear", "cosine"), help="linear: W f + b; cosine: scale * cos(f, w_c)"),
        "scale": Option(float, gt=0, help="cosine head: logits = scale * cos(f, w_c); text init: weight = scale * t_c"),
        "init_from_text": Option(bool, help="start from the zero-shot classifier (CLIP backbones only)"),
        "standardize": Option(bool, help="z-score features with the train mean / std before the head"),
    }, help="the classifier on the frozen features", checks=(_one_feature_space,)),
    "loss": LOSS,
    "train": TRAINING,
}


class Standardize(torch.nn.Module):
    """z-score with the training features' mean and std (fixed buffers, saved with the head)."""

    def __init__(self, train_features: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", train_features.mean(dim=0))
        self.register_buffer("std", train_features.std(dim=0).clamp_min(1e-6))

    def forward(self, features):
        return (features - self.mean) / self.std


@METHODS.register_module(name="linear_probe")
class LinearProbe(Method):
    """Linear probe: linear or cosine head on frozen image features (optionally text-initialised), CE, any sampler."""

    options = OPTIONS

    @classmethod
    def saves_linear_head(cls, cfg: dict) -> bool:
        """Whether a run of `cfg` leaves its head as the `linear_head` artifact (posthoc_taunorm asks
        before any work): always, linear or cosine."""
        return True

    def fit(self, data, ctx):
        cfg = self.cfg
        self.encoder = create_backbone(cfg["backbone"]["clip"], ctx.device)
        head_cfg = cfg["head"]
        text_init = None
        if head_cfg["init_from_text"]:
            if not self.encoder.is_clip:
                raise UserError(f"head.init_from_text needs a CLIP backbone, got '{self.encoder.label}'")
            templates = templates_by_name(cfg["text"]["templates"])
            text_init = text_classifier(self.encoder, data.class_names, templates, ctx)
        train = data.split("train")
        features = self._feature_tensor(train, ctx)
        # The head's random init comes from (seed, purpose): whether features were just extracted
        # (cold cache) or read (warm) does not change it.
        with seeded(ctx.seed, "linear_probe", "head"):
            head = build_head(head_cfg["type"], self.encoder.embed_dim, data.num_classes,
                              head_cfg["scale"], text_init)
        if head_cfg["standardize"]:
            head = torch.nn.Sequential(Standardize(features), head)
        self.head = head.to(ctx.device)
        labels = torch.from_numpy(train.labels).to(ctx.device)
        sampler = build_sampler(cfg["train"]["sampler"], train.labels, seed=ctx.seed)
        batches = TensorBatches(features, labels, sampler, cfg["batch_size"])
        class_counts = data.class_counts
        loss, progress = build_loss(cfg["loss"]), TrainingProgress()
        # The val note only shows in the progress log: no per-epoch evaluation without it.
        # Val top-1 each epoch where someone reads it: the progress log, or a tuning trial's pruner.
        measure_val = "val" in data.splits and (ctx.progress or ctx.val_reporter is not None)
        hooks = [progress] + ([self._val_log(data.split("val"), ctx)] if measure_val else [])
        ctx.trainer(cfg["train"], name="linear_probe").fit(
            self.head, batches, batches.steps_per_epoch,
            loss_fn=lambda logits, targets: loss(logits, targets, class_counts, progress=progress.value),
            hooks=hooks)
        # Its weights beside the record: a later posthoc_taunorm rescales them from the saved logits.
        save_linear_head(ctx, self.head)

    def _val_log(self, val, ctx) -> ValAccuracyLog:
        features = self._feature_tensor(val, ctx)  # once, not from the disk cache every epoch
        return ValAccuracyLog(lambda: self._logits(features), val.labels)

    def _feature_tensor(self, split, ctx) -> torch.Tensor:
        return image_features(self.encoder, split, ctx, batch_size=self.cfg["eval_batch_size"], device=ctx.device)

    @torch.no_grad()
    def _logits(self, features: torch.Tensor) -> np.ndarray:
        self.head.eval()
        return self.head(features).float().cpu().numpy()

    def predict(self, split, ctx) -> np.ndarray:
        return self._logits(self._feature_tensor(split, ctx))
