"""BALLAD (Ma et al. 2021, "A Simple Long-Tailed Recognition Baseline via Vision-Language Model").

Phase A fine-tunes CLIP on the long-tailed train set (the paper's symmetric multi-positive
contrastive loss, or the public code's C-way cross-entropy over all class prompts). Phase B
freezes the model and trains a residual adapter on the image features with class-balanced
sampling, read out by cosine similarity to the class text features.

A finished phase A is kept under results/work/ in a folder named by a hash of everything it
depends on, so runs that differ only in phase B start from it instead of fine-tuning again.
"""
import itertools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.config import config_hash
from ltbench.data.loading import epoch_batches
from ltbench.data.samplers import build_sampler_from_spec
from ltbench.engine.batches import TensorBatches
from ltbench.engine.checkpoints import read_stage_checkpoint
from ltbench.engine.features import image_features, text_classifier
from ltbench.engine.trainer import save_atomic
from ltbench.core.errors import UserError, first_line_of, unknown_name
from ltbench.losses import multi_positive_contrastive
from ltbench.engine.method import Method
from ltbench.models.adapters import ResidualAdapter, TextCosineClassifier
from ltbench.models.clip_finetune import ClipFineTuner, set_trainable
from ltbench.data.prompts import templates_by_name
from ltbench.core.registry import METHODS
from ltbench.core.names import backbone_slug
from ltbench.methods.zeroshot_clip import create_clip_backbone

PHASE_A_LOSSES = ("contrastive", "class_ce")
CHECKPOINT_FORMAT = "ltbench.ballad.phase_a/1"
MODEL_SELECTION = ("last", "best_val")


def _image_batches(split, clip, augment, batch_size, sampler, ctx):
    return epoch_batches(split, clip.eval_transform, augment, batch_size, sampler, seed=ctx.seed,
                         num_workers=ctx.num_workers, pin_memory=ctx.device.type == "cuda")


def phase_a_steps(images: int, batch_size: int, drop_last: bool) -> int:
    """Steps of one phase-A epoch. drop_last: the code's loop breaks after int(N / batch) steps,
    so the last partial batch never trains; otherwise it is one more, smaller step."""
    if not isinstance(drop_last, bool):
        raise UserError(f"phase_a.drop_last must be true or false, got {drop_last!r}")
    steps = images // batch_size if drop_last else math.ceil(images / batch_size)
    if steps == 0:
        raise UserError(f"phase_a.drop_last: the {images} training images fill no batch of "
                        f"phase_a.batch_size={batch_size}; lower the batch size or set phase_a.drop_last=false")
    return steps


def _first_steps(batches, steps: int):
    # Every process stops after the same number of steps, as the code's `break` does.
    return lambda epoch: itertools.islice(batches(epoch), steps)


class PromptBatches:
    """Phase A steps: ((images, prompt_rows, text_index), labels).

    Every (class, template) prompt is tokenised once; a step picks one template per text (drawn
    from (seed, epoch, step), so a resumed run draws the same) and names the prompts to encode:
    - contrastive: the distinct prompts of the batch's images; text_index maps image j to its
      prompt, so logits are [B, B] with text j belonging to image j's class;
    - class_ce: one prompt per class; logits are [B, C].
    """

    def __init__(self, image_batches, num_classes: int, num_templates: int, objective: str, seed: int):
        self.image_batches, self.seed = image_batches, seed
        self.num_classes, self.num_templates, self.objective = num_classes, num_templates, objective

    def _templates(self, epoch: int, step: int, count: int) -> np.ndarray:
        if self.num_templates == 1:
            return np.zeros(count, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch, step]).integers(self.num_templates, size=count)

    def __call__(self, epoch: int):
        for step, (images, labels) in enumerate(self.image_batches(epoch)):
            if self.objective == "contrastive":
                prompts = labels.numpy() * self.num_templates + self._templates(epoch, step, len(labels))
                rows, text_index = np.unique(prompts, return_inverse=True)
            else:
                classes = np.arange(self.num_classes)
                rows = classes * self.num_templates + self._templates(epoch, step, self.num_classes)
                text_index = classes
            yield (images, torch.from_numpy(rows), torch.from_numpy(text_index.astype(np.int64))), labels


def phase_a_identity(cfg: dict) -> dict:
    """Everything the fine-tuned weights depend on (the seed goes into the folder name)."""
    phase = {key: value for key, value in cfg["phase_a"].items() if key != "checkpoint"}
    return {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"], "phase_a": phase,
            "templates": cfg["text"]["templates"], "amp": cfg["amp"]}


def load_phase_a_checkpoint(clip, path) -> None:
    state = read_stage_checkpoint(path, "phase_a.checkpoint", "phase_a.pt", "BALLAD")
    if isinstance(state, dict) and "state_dict" in state:
        written_for = state.get("model_name")
        if written_for and written_for != clip.spec.model:
            raise UserError(f"phase_a.checkpoint {path} was written for backbone model {written_for}, but "
                            f"this run's backbone is {clip.spec.text}; pass --backbone {written_for}:<tag>")
        state = state["state_dict"]
    try:
        clip.model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise UserError(f"phase_a.checkpoint {path} does not fit {clip.spec.model}: "
                        f"{first_line_of(error)}") from None


def fine_tune(clip, data, cfg: dict, templates, ctx) -> None:
    """Phase A: fine-tune `clip` in place, or load / reuse a finished phase A."""
    phase = cfg["phase_a"]
    if phase["checkpoint"]:
        load_phase_a_checkpoint(clip, phase["checkpoint"])
        ctx.outputs.artifacts["phase_a_checkpoint"] = str(Path(phase["checkpoint"]).expanduser().resolve())
        return
    if int(phase["epochs"]) == 0:
        ctx.log("phase A: 0 epochs, phase B runs on the backbone's own weights")
        return
    if phase["loss"] not in PHASE_A_LOSSES:
        raise unknown_name("phase_a.loss", phase["loss"], PHASE_A_LOSSES)
    key = config_hash(phase_a_identity(cfg))[:10]
    work_dir = ctx.shared_work_dir(f"ballad_phase_a__{backbone_slug(clip.label)}__{key}__seed{ctx.seed}")
    final = work_dir / "phase_a.pt"
    ctx.outputs.artifacts["phase_a_checkpoint"] = str(final.resolve())
    if final.exists():
        ctx.log(f"phase A: reusing the finished phase A in {final} (delete it to fine-tune again)")
        load_phase_a_checkpoint(clip, final)
        return

    train = data.split("train")
    prompts = [template.format(name) for name in data.class_names for template in templates]
    tuner = ClipFineTuner(clip.model, clip.tokenize(prompts), phase["logit_scale"], phase["batchnorm"]).to(ctx.device)
    trainable = set_trainable(clip.model, phase["trainable"], phase["last_blocks"])
    if trainable == 0:
        raise UserError("phase A has nothing to train: phase_a.trainable=last_blocks with last_blocks=0 and no "
                        "head parameters; raise phase_a.last_blocks or set phase_a.epochs=0")
    total = sum(p.numel() for p in clip.model.parameters())
    ctx.log(f"phase A: {phase['loss']} loss, {trainable:,} of {total:,} parameters train")
    sampler = build_sampler_from_spec(phase["sampler"], train.labels, seed=ctx.seed)
    batch_size = int(phase["batch_size"])
    steps = phase_a_steps(len(sampler), batch_size, phase["drop_last"])
    images = _first_steps(_image_batches(train, clip, phase["augment"], batch_size, sampler, ctx), steps)
    batches = PromptBatches(images, data.num_classes, len(templates), phase["loss"], ctx.seed)
    loss = multi_positive_contrastive if phase["loss"] == "contrastive" else F.cross_entropy
    trainer = ctx.trainer(phase, name="phase_a", work_dir=work_dir)
    trainer.fit(tuner, batches, steps, loss_fn=loss)
    save_atomic({"format": CHECKPOINT_FORMAT, "model_name": clip.spec.model, "backbone": clip.label,
                 "phase_a": {k: v for k, v in phase.items() if k != "checkpoint"},
                 "state_dict": clip.model.state_dict()}, final)
    # The epoch checkpoint also holds optimizer state; phase_a.pt is all later runs need.
    trainer.checkpoint_path.unlink(missing_ok=True)
    ctx.log(f"phase A: saved {final}")


@METHODS.register_module(name="ballad")
class Ballad(Method):
    """BALLAD: fine-tune CLIP on the LT train set (phase A), then a class-balanced residual adapter on frozen features (phase B)."""

    def fit(self, data, ctx):
        cfg = self.cfg
        self.clip = create_clip_backbone(cfg, ctx)
        self._split_features = {}  # filled only after phase A: the weights are final from then on
        templates = templates_by_name(cfg["text"]["templates"])
        with ctx.timer("phase_a"):
            fine_tune(self.clip, data, cfg, templates, ctx)
        self.clip.model.eval()
        self.clip.model.requires_grad_(False)
        with ctx.timer("phase_a_eval"):
            text_features = text_classifier(self.clip, data.class_names, templates, ctx)
            eval_split = data.split(cfg["eval_split"])
            zero_shot = float(cfg["text"]["logit_scale"]) * self._features(eval_split, ctx) @ text_features.t()
            ctx.report("after_phase_a", zero_shot.cpu().numpy(), eval_split)
        with ctx.timer("phase_b"):
            self.classifier = self._train_adapter(data, text_features, ctx)

    def _features(self, split, ctx) -> torch.Tensor:
        """Frozen-model features of a split, read from the cache once per run (the evaluation split
        serves the after-phase-A report and the final prediction)."""
        if split.fingerprint not in self._split_features:
            # np.array copies: cache hits are read-only memory maps.
            features = image_features(self.clip, split, ctx, batch_size=self.cfg["eval_batch_size"])
            self._split_features[split.fingerprint] = torch.from_numpy(np.array(features)).to(ctx.device)
        return self._split_features[split.fingerprint]

    def _train_adapter(self, data, text_features, ctx):
        phase = self.cfg["phase_b"]
        if phase["select"] not in MODEL_SELECTION:
            raise unknown_name("phase_b.select", phase["select"], MODEL_SELECTION)
        train = data.split("train")
        adapter = ResidualAdapter(self.clip.embed_dim, phase["ratio"], phase["adapter"])
        classifier = TextCosineClassifier(adapter, text_features, phase["logit_scale"]).to(ctx.device)
        batch_size = int(phase["batch_size"])
        # The public code: int(N / batch) steps per epoch, whatever the sampler.
        steps = max(1, len(train) // batch_size)
        sampler = build_sampler_from_spec(phase["sampler"], train.labels, num_samples=steps * batch_size,
                                          seed=ctx.seed)
        if not phase["augment"]["enabled"]:
            # Frozen encoder, no augmentation: every step reads cached features.
            labels = torch.from_numpy(train.labels).to(ctx.device)
            batches = TensorBatches(self._features(train, ctx), labels, sampler, batch_size)
            forward = None
        else:
            batches = _image_batches(train, self.clip, phase["augment"], batch_size, sampler, ctx)
            forward = self._encode_then_classify
        selection = _BestOnVal(self, data, ctx) if phase["select"] == "best_val" else None
        identity = {"visual": self.clip.visual_fingerprint(), "text": self.clip.text_fingerprint()}
        ctx.trainer(phase, name="phase_b", identity=identity).fit(
            classifier, batches, steps, loss_fn=F.cross_entropy, forward=forward,
            on_epoch_end=selection and (lambda epoch: selection.update(classifier, epoch)))
        if selection is not None:
            selection.restore(classifier)
        return classifier

    def _encode_then_classify(self, classifier, images):
        with torch.no_grad():
            features = self.clip.encode_images(images)
        return classifier(features)

    @torch.no_grad()
    def _logits(self, classifier, features) -> torch.Tensor:
        classifier.eval()
        return classifier(features).float()

    def predict(self, split, ctx) -> np.ndarray:
        return self._logits(self.classifier, self._features(split, ctx)).cpu().numpy()


class _BestOnVal:
    """phase_b.select=best_val: keep the adapter of the epoch with the best val top-1 (the public
    code saves it, though it prints last-epoch test numbers). Kept on disk, so that a resumed
    run still knows the best epoch before the interruption."""

    def __init__(self, method: Ballad, data, ctx):
        if "val" not in data.splits:
            raise UserError(f"phase_b.select=best_val needs a val split; dataset '{data.name}' has none")
        self.method, self.val = method, data.split("val")
        self.features = method._features(self.val, ctx)
        self.labels = torch.from_numpy(self.val.labels).to(ctx.device)
        self.path = Path(ctx.work_dir) / "phase_b_best.pt"
        self.best = torch.load(self.path, weights_only=True) if ctx.resume and self.path.exists() else None

    def update(self, classifier, epoch: int) -> str:
        accuracy = float((self.method._logits(classifier, self.features).argmax(1) == self.labels).float().mean()) * 100
        if self.best is None or accuracy > self.best["val_top1"]:
            state = {name: tensor.detach().clone() for name, tensor in classifier.state_dict().items()}
            self.best = {"epoch": epoch, "val_top1": accuracy, "state_dict": state}
            save_atomic(self.best, self.path)
        return f"val top-1 {accuracy:.2f} (best {self.best['val_top1']:.2f}, epoch {self.best['epoch'] + 1})"

    def restore(self, classifier):
        if self.best is not None:
            classifier.load_state_dict(self.best["state_dict"])
