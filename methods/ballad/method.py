"""The BALLAD method: phase A (CLIP fine-tuning, from the framework), then phase B, a residual
adapter trained on the frozen model's features with class-balanced sampling."""
import numpy as np
import torch
import torch.nn.functional as F

from ltbench.api import (
    METHODS,
    BestOnVal,
    Method,
    TensorBatches,
    UserError,
    build_sampler,
    create_clip_backbone,
    image_features,
    seeded,
    templates_by_name,
    text_classifier,
)
from ltbench.api.finetune import clip_train_batches, fine_tune_clip
from ltbench.api.training import PerSplit
from ltbench.methods.ballad.adapters import ResidualAdapter, TextCosineClassifier
from ltbench.methods.ballad.options import OPTIONS


@METHODS.register_module(name="ballad")
class Ballad(Method):
    """BALLAD: fine-tune CLIP on the LT train set (phase A), then a class-balanced residual adapter on frozen features (phase B)."""

    options = OPTIONS

    def fit(self, data, ctx):
        cfg = self.cfg
        self.clip = create_clip_backbone(cfg["backbone"]["clip"], ctx.device, cfg["method"])
        # Frozen-model features, read from the cache once per split and run (the evaluation split
        # serves the after-phase-A report and the final prediction); filled only after phase A,
        # when the weights are final.
        self._features = PerSplit(lambda split: self._frozen_features(split, ctx))
        templates = templates_by_name(cfg["text"]["templates"])
        with ctx.timer("phase_a"):
            fine_tune_clip(self.clip, data, cfg, templates, ctx)
        self.clip.freeze()
        with ctx.timer("phase_a_eval"):
            text_features = text_classifier(self.clip, data.class_names, templates, ctx)
            eval_split = data.split(cfg["eval_split"])
            zero_shot = float(cfg["text"]["logit_scale"]) * self._features(eval_split) @ text_features.t()
            ctx.report("after_phase_a", zero_shot.cpu().numpy(), eval_split)
        with ctx.timer("phase_b"):
            self.classifier = self._train_adapter(data, text_features, ctx)

    def _frozen_features(self, split, ctx) -> torch.Tensor:
        return image_features(self.clip, split, ctx, batch_size=self.cfg["eval_batch_size"], device=ctx.device)

    def _train_adapter(self, data, text_features, ctx):
        phase = self.cfg["phase_b"]
        train = data.split("train")
        with seeded(ctx.seed, "ballad", "phase_b", "adapter"):
            adapter = ResidualAdapter(self.clip.embed_dim, phase["ratio"], phase["adapter"])
        classifier = TextCosineClassifier(adapter, text_features, phase["logit_scale"]).to(ctx.device)
        batch_size = int(phase["batch_size"])
        # The public code: int(N / batch) steps per epoch, whatever the sampler.
        steps = max(1, len(train) // batch_size)
        sampler = build_sampler(phase["sampler"], train.labels, num_samples=steps * batch_size,
                                          seed=ctx.seed)
        if not phase["augment"]["enabled"]:
            # Frozen encoder, no augmentation: every step reads cached features.
            labels = torch.from_numpy(train.labels).to(ctx.device)
            batches = TensorBatches(self._features(train), labels, sampler, batch_size)
            forward = None
        else:
            batches = clip_train_batches(train, self.clip, phase["augment"], batch_size, sampler, ctx)
            forward = self._encode_then_classify
        hooks = [self._best_on_val(classifier, data, ctx)] if phase["select"] == "best_val" else []
        identity = {"visual": self.clip.visual_fingerprint(), "text": self.clip.text_fingerprint()}
        ctx.trainer(phase, name="phase_b", identity=identity).fit(
            classifier, batches, steps, loss_fn=F.cross_entropy, forward=forward, hooks=hooks)
        return classifier

    def _best_on_val(self, classifier, data, ctx) -> BestOnVal:
        """phase_b.select=best_val: the adapter of the epoch with the best val top-1 (the public
        code saves it, though it prints last-epoch test numbers)."""
        if "val" not in data.splits:
            raise UserError(f"phase_b.select=best_val needs a val split; dataset '{data.name}' has none")
        val = data.split("val")
        features, labels = self._features(val), torch.from_numpy(val.labels).to(ctx.device)
        return BestOnVal(classifier, lambda: self._logits(classifier, features), labels,
                         ctx.work_dir / "phase_b_best.pt", ctx.resume)

    def _encode_then_classify(self, classifier, images):
        with torch.no_grad():
            features = self.clip.encode_images(images)
        return classifier(features)

    @torch.no_grad()
    def _logits(self, classifier, features) -> torch.Tensor:
        classifier.eval()
        return classifier(features).float()

    def predict(self, split, ctx) -> np.ndarray:
        return self._logits(self.classifier, self._features(split)).cpu().numpy()
