"""TACKLE (Ma et al., "Unleashing the Potential of Vision-Language Models for Long-Tailed Visual
Recognition"): CLIP pseudo-labels an unlabeled pool, the images it assigns to tail classes join
the train set, and a vision-only backbone (any timm model) trains on the enriched set. The run
can end with an ensemble of that model and CLIP (``ensemble.with_clip``): "DeiT-S + CLIP".

The paper publishes neither the selection limits, nor the loss, nor the ensemble rule: each is
an option, and benchmarks/methods/tackle.yaml marks them as ltbench's choice.
"""
import math

import numpy as np

from ltbench.api import (
    METHODS,
    Method,
    TrainingProgress,
    build_loss,
    build_sampler,
    create_clip_backbone,
    image_features,
    seeded,
    templates_by_name,
    text_classifier,
)
from ltbench.api.ensembles import ensemble_for, related_method_config
from ltbench.api.finetune import fine_tune_clip
from ltbench.api.images import encode_split, epoch_batches
from ltbench.api.pools import unlabeled_pool, with_pool_images
from ltbench.api.training import PerSplit
from ltbench.api.vision import create_timm_classifier, timm_eval_transform, timm_label
from ltbench.methods.tackle.options import OPTIONS
from ltbench.methods.tackle.pseudo_labels import pool_assignments, pseudo_label_precision, select_pseudo_labels


class ClipTeacher:
    """The CLIP model that labels the pool (and joins the ensemble): zero-shot CLIP, or CLIP after
    BALLAD's phase A, configured as a `ballad` run of this dataset and backbone would be, so a
    finished phase A of such a run is reused."""

    def __init__(self, cfg: dict, data, ctx):
        teacher = cfg["teacher"]
        self.cfg, self.ctx = cfg, ctx
        # Zero-shot logits once per split and run (val and the evaluation split serve both the
        # ensemble's fit and the final prediction).
        self.logits = PerSplit(self._zero_shot_logits)
        self.clip = create_clip_backbone(cfg["backbone"]["clip"], ctx.device, cfg["method"])
        if teacher["source"] == "ballad_phase_a":
            ballad_cfg = related_method_config("ballad", cfg, teacher["ballad_options"] or ())
            if teacher["phase_a_checkpoint"]:
                ballad_cfg["phase_a"]["checkpoint"] = teacher["phase_a_checkpoint"]
            fine_tune_clip(self.clip, data, ballad_cfg, templates_by_name(ballad_cfg["text"]["templates"]), ctx)
        self.clip.freeze()
        self.text = text_classifier(self.clip, data.class_names, templates_by_name(cfg["text"]["templates"]), ctx)

    def features(self, split) -> np.ndarray:
        return image_features(self.clip, split, self.ctx, batch_size=self.cfg["eval_batch_size"])

    def _zero_shot_logits(self, split) -> np.ndarray:
        features = image_features(self.clip, split, self.ctx, batch_size=self.cfg["eval_batch_size"],
                                  device=self.text.device)
        return (float(self.cfg["text"]["logit_scale"]) * features @ self.text.t()).cpu().numpy()


@METHODS.register_module(name="tackle")
class Tackle(Method):
    """TACKLE: CLIP pseudo-labels an unlabeled pool for tail classes; a timm backbone trains on train + pool (optionally + CLIP ensemble)."""

    options = OPTIONS

    @classmethod
    def backbone_label_for(cls, cfg: dict) -> str:
        label = timm_label(str(cfg["backbone"]["vision"]))
        if cfg["ensemble"]["with_clip"]:
            label += "+" + str(cfg["backbone"]["clip"])
        return label

    def fit(self, data, ctx):
        cfg = self.cfg
        self._vision_logits = PerSplit(lambda split: self._predict_vision(split, ctx))
        with_clip = bool(cfg["ensemble"]["with_clip"])
        # The ensemble's settings against the data (weights chosen on val need a val split) are
        # checked first: a user error must come before any model is loaded or trained.
        self.ensemble = ensemble_for(cfg["ensemble"], 2, data) if with_clip else None
        with ctx.timer("pseudo_label"):
            pool = self._pool(data, ctx) if cfg["pool"]["enabled"] else None
            self.teacher = ClipTeacher(cfg, data, ctx) if pool is not None or with_clip else None
            train = self._enriched_train(data, pool, ctx) if pool is not None else data.split("train")
        with ctx.timer("vision_train"):
            self._train_vision(train, data, ctx)
        if with_clip:
            with ctx.timer("ensemble"):
                self._fit_ensemble(data, ctx)

    # -- pseudo-labels -------------------------------------------------------------------------
    def _pool(self, data, ctx):
        pool_cfg = self.cfg["pool"]
        return unlabeled_pool(data, pool_cfg["root"], pool_cfg["list"], self.cfg["dataset"]["root"],
                              log=ctx.log, progress=ctx.progress)

    def _select(self, assigned, confidence, data):
        select = self.cfg["select"]
        return select_pseudo_labels(assigned, confidence, data.class_counts, classes=select["classes"],
                                    threshold=select["threshold"], top_n=select["top_n"],
                                    cap_at_many=select["cap_at_many"], shot_rule=self.cfg["shot_rule"])

    def _enriched_train(self, data, pool, ctx):
        cfg = self.cfg
        assigned, confidence = pool_assignments(self.teacher.features(pool), self.teacher.text,
                                                float(cfg["teacher"]["tau"]))
        selection = self._select(assigned, confidence, data)
        precision = pseudo_label_precision(selection, pool.labels, data.class_counts, cfg["shot_rule"])
        ctx.outputs.details["pseudo_labels"] = {
            "pool_images": len(pool), "added": int(len(selection.indices)),
            "added_per_class": selection.added_per_class.tolist(),
            "mean_confidence": float(selection.confidence.mean()) if len(selection.indices) else None,
            "precision": precision,
        }
        measured = [f"{group} {value:.1f}%" for group, value in (precision or {}).items()
                    if group != "images_with_known_label" and value is not None]
        shown = ", precision " + ", ".join(measured) if measured else ""
        ctx.log(f"pseudo-labels: {len(selection.indices):,} of {len(pool):,} pool images join "
                f"{int((selection.added_per_class > 0).sum())} classes{shown}")
        return with_pool_images(data.split("train"), pool, selection.indices, selection.labels)

    # -- vision-only model -----------------------------------------------------------------------
    def _train_vision(self, train, data, ctx):
        cfg = self.cfg
        # The model's initial weights depend on (seed, purpose) only, not on whether a teacher
        # was built or its features cached before (runs with and without the pool start alike).
        with seeded(ctx.seed, "tackle", "vision", "init"):
            self.model = create_timm_classifier(str(cfg["backbone"]["vision"]), data.num_classes,
                                                bool(cfg["vision"]["pretrained"]), ctx.device)
        self.transform = timm_eval_transform(self.model, cfg["vision"]["input_size"])
        counts = np.bincount(train.labels, minlength=data.num_classes)
        ctx.outputs.details["train_images"] = {"labeled": len(data.split("train")), "total": len(train)}
        sampler = build_sampler(cfg["train"]["sampler"], train.labels, seed=ctx.seed)
        batch_size = int(cfg["batch_size"])
        batches = epoch_batches(train, self.transform, cfg["augment"], batch_size, sampler, seed=ctx.seed,
                                num_workers=ctx.num_workers, pin_memory=ctx.device.type == "cuda", device=ctx.device)
        loss, progress = build_loss(cfg["loss"]), TrainingProgress()
        # Balanced Softmax and friends see the class counts of what the model trains on: train + pool.
        ctx.trainer(cfg["train"], name="vision", identity={"train_images": train.fingerprint}).fit(
            self.model, batches, math.ceil(len(sampler) / batch_size),
            loss_fn=lambda logits, targets: loss(logits, targets, counts, progress=progress.value), hooks=[progress])
        self.model.eval()

    def _predict_vision(self, split, ctx) -> np.ndarray:
        self.model.eval()
        return encode_split(split, ctx, int(self.cfg["eval_batch_size"]), self.model, transform=self.transform,
                            desc=f"predict {split.name}").numpy()

    # -- ensemble with CLIP ----------------------------------------------------------------------
    def _fit_ensemble(self, data, ctx):
        if "val" in data.splits:
            val = data.split("val")
            self.ensemble.fit([self._vision_logits(val), self.teacher.logits(val)], val.labels)
        eval_split = data.split(self.cfg["eval_split"])
        ctx.report("vision_only", self._vision_logits(eval_split), eval_split)
        ctx.report("clip", self.teacher.logits(eval_split), eval_split)
        ctx.outputs.details["ensemble"] = self.ensemble.summary(["vision", "clip"],
                                                        self.ensemble.weights_origin(data, eval_split, ctx))
        ctx.log(f"ensemble: weights vision {self.ensemble.weights[0]:.2f}, clip {self.ensemble.weights[1]:.2f}")

    def predict(self, split, ctx) -> np.ndarray:
        vision = self._vision_logits(split)
        if self.ensemble is None:
            return vision
        return self.ensemble([vision, self.teacher.logits(split)])
