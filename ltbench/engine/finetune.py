"""Fine-tuning CLIP on the long-tailed train set: BALLAD's phase A, which TACKLE's teacher reuses,
and the image stream (augmented batches, steps per epoch) the clip_finetune methods share.

The paper's symmetric multi-positive contrastive loss, or the public code's C-way cross-entropy
over all class prompts, through the shared trainer. A finished phase A is a stage (see
engine/stages.py): kept in a folder named by a hash of everything it depends on, so runs that
differ only in what comes after it (BALLAD's phase B, a TACKLE teacher) start from it.
"""
import itertools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.config.options import Option
from ltbench.core import distributed
from ltbench.core.errors import UserError, first_line_of
from ltbench.data.loading import epoch_batches
from ltbench.data.samplers import build_sampler
from ltbench.engine.options import AUGMENT, TRAINING
from ltbench.engine.stages import Stage
from ltbench.losses import multi_positive_contrastive
from ltbench.models.clip_finetune import BATCHNORM_MODES, ClipFineTuner
from ltbench.models.trainable import TRAINABLE_PARTS, set_trainable

PHASE_A_LOSSES = ("contrastive", "class_ce")
# BALLAD's phase A (the `phase_a` section of a ballad config; TACKLE's ballad_phase_a teacher
# reads it from the ballad config of its dataset): the trainer's settings and these.
PHASE_A_OPTIONS = TRAINING.extend({
    "epochs": Option(int, ge=0, help="phase A epochs; 0 skips phase A"),
    "checkpoint": Option(str, None, nullable=True, help="a phase_a.pt of an earlier run: skip phase A and load it"),
    "loss": Option(str, choices=PHASE_A_LOSSES,
                   help="contrastive: multi-positive InfoNCE over the batch; class_ce: CE over all class prompts"),
    "logit_scale": Option(float, gt=0, nullable=True,
                          help="the temperature: null = CLIP's own learned one, kept fixed; a number fixes it"),
    "trainable": Option(str, choices=TRAINABLE_PARTS, help="what trains: all, visual, text or last_blocks"),
    "last_blocks": Option(int, ge=0, help="trainable last_blocks: residual blocks trained at the end of each encoder"),
    "batchnorm": Option(str, choices=BATCHNORM_MODES,
                        help="ResNet BatchNorm statistics: frozen (the pretrained ones) or train"),
    "batch_size": Option(int, ge=1, help="images per step"),
    "drop_last": Option(bool, help="true: the last partial batch of an epoch is not trained"),
    "augment": AUGMENT,
}, help="phase A: CLIP fine-tuned on the long-tailed train set")
CHECKPOINT_FORMAT = "ltbench.ballad.phase_a/1"
NEGATIVES = "global batch"  # see phase_a_identity
PHASE_A = Stage(name="ballad_phase_a", label="phase A", file_name="phase_a.pt", artifact="phase_a_checkpoint")


def clip_train_batches(split, clip, augment, batch_size, sampler, ctx):
    """epoch -> augmented (images, labels) batches of `split` at `clip`'s eval transform, as the run
    decodes them (``ctx.image_transform``), in `sampler` order (``epoch_batches``)."""
    return epoch_batches(split, ctx.image_transform(clip.eval_transform), augment, batch_size, sampler, seed=ctx.seed,
                         num_workers=ctx.num_workers, pin_memory=ctx.device.type == "cuda", device=ctx.device)


def epoch_steps(images: int, batch_size: int, drop_last: bool, section: str = "phase_a") -> int:
    """Steps of one fine-tuning epoch. drop_last: the BALLAD code's loop breaks after
    int(N / batch) steps, so the last partial batch never trains; otherwise it is one more,
    smaller step. `section` names the config section in the errors."""
    steps = images // batch_size if drop_last else math.ceil(images / batch_size)
    if steps == 0:
        raise UserError(f"{section}.drop_last: the {images} training images fill no batch of "
                        f"{section}.batch_size={batch_size}; lower the batch size or set {section}.drop_last=false")
    return steps


def phase_a_steps(images: int, batch_size: int, drop_last: bool) -> int:
    return epoch_steps(images, batch_size, drop_last, "phase_a")


def _first_steps(batches, steps: int):
    # Every process stops after the same number of steps, as the code's `break` does.
    return lambda epoch: itertools.islice(batches(epoch), steps)


def clip_image_stream(split, clip, section: dict, sampler, ctx, name: str):
    """(batches(epoch) of (augmented images, labels), steps per epoch) for fine-tuning `clip`'s
    image tower on `split`: section's batch_size, drop_last and augment; `name` is the section's
    key, for the errors. BALLAD's phase A and the clip_finetune methods read images this way."""
    batch_size = int(section["batch_size"])
    steps = epoch_steps(len(sampler), batch_size, section["drop_last"], name)
    images = clip_train_batches(split, clip, section["augment"], batch_size, sampler, ctx)
    return _first_steps(images, steps), steps


class PromptBatches:
    """Phase A steps: ((images, prompt_rows, text_index, text_length), labels).

    Every (class, template) prompt is tokenised once; a step picks one template per text (drawn
    from (seed, epoch, step), so a resumed run draws the same) and names the prompts to encode:
    - contrastive: the distinct prompts of the batch's images; text_index maps image j to its
      prompt, so logits are [B, B] with text j belonging to image j's class. Under torchrun the
      draws follow the image's position in the global batch (this process's images are its
      positions rank, rank + world_size, ...), so the processes together draw what one
      process draws for the whole batch;
    - class_ce: one prompt per class (the same draws in every process); logits are [B, C].
    text_length: the longest chosen prompt's token need (prompt_lengths, one per prompt; the
    full context when not given), so the text tower is cut without a device sync.
    """

    def __init__(self, image_batches, num_classes: int, num_templates: int, objective: str, seed: int,
                 prompt_lengths=None, rank: int = None, world_size: int = None):
        self.image_batches, self.seed = image_batches, seed
        self.num_classes, self.num_templates, self.objective = num_classes, num_templates, objective
        self.prompt_lengths = None if prompt_lengths is None else np.asarray(prompt_lengths)
        self.rank = distributed.get_rank() if rank is None else int(rank)
        self.world_size = distributed.get_world_size() if world_size is None else int(world_size)

    def _templates(self, epoch: int, step: int, count: int) -> np.ndarray:
        if self.num_templates == 1:
            return np.zeros(count, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch, step]).integers(self.num_templates, size=count)

    def _image_templates(self, epoch: int, step: int, count: int) -> np.ndarray:
        """Templates of this process's `count` images: those of their global batch positions."""
        drawn = self._templates(epoch, step, count * self.world_size)
        return drawn[self.rank::self.world_size]

    def __call__(self, epoch: int):
        for step, (images, labels) in enumerate(self.image_batches(epoch)):
            if self.objective == "contrastive":
                prompts = labels.numpy() * self.num_templates + self._image_templates(epoch, step, len(labels))
                rows, text_index = np.unique(prompts, return_inverse=True)
            else:
                classes = np.arange(self.num_classes)
                rows = classes * self.num_templates + self._templates(epoch, step, self.num_classes)
                text_index = classes
            inputs = (images, torch.from_numpy(rows), torch.from_numpy(text_index.reshape(-1).astype(np.int64)))
            if self.prompt_lengths is not None:
                inputs += (int(self.prompt_lengths[rows].max()),)
            yield inputs, labels


def global_batch_contrastive(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The multi-positive contrastive loss of the global batch: under torchrun the logits are
    already global ([B, B], ClipFineTuner's global_pairs) and the labels are gathered to match
    (in rank order, as the features are)."""
    if distributed.is_active() and logits.shape[0] != labels.shape[0]:
        labels = torch.cat(distributed.all_gather_list(labels))
    return multi_positive_contrastive(logits, labels)


def phase_a_identity(cfg: dict, precision: str) -> dict:
    """Everything the fine-tuned weights depend on (the seed goes into the folder name).

    precision: the one phase A trains at (RunContext.precision: bf16 only with amp on CUDA), not
    the amp setting, which a CPU run ignores: a phase A trained in fp32 on a CPU is not what a
    bf16 GPU run would train, and the other way round. Keying on it renamed every phase-A folder
    once."""
    phase = {key: value for key, value in cfg["phase_a"].items() if key != "checkpoint"}
    identity = {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"], "phase_a": phase,
                "templates": cfg["text"]["templates"], "precision": precision,
                # Under torchrun a step now optimises the global batch (negatives, template draws
                # and in-memory augmentations gathered / drawn over every process); a phase A
                # trained before that, with local negatives, must not be reused. Adding the field
                # renamed every phase-A folder once, single-process ones included.
                "negatives": NEGATIVES}
    identity["jpeg_draft"] = cfg["jpeg_draft"]
    return identity


def load_phase_a_checkpoint(clip, path) -> None:
    state = PHASE_A.read_checkpoint(path, "phase_a.checkpoint", "BALLAD")
    if isinstance(state, dict) and "state_dict" in state:
        written_for = state.get("model_name")
        if written_for and written_for != clip.model_name:
            raise UserError(f"phase_a.checkpoint {path} was written for backbone model {written_for}, but "
                            f"this run's backbone is {clip.label}; pass --backbone {written_for}:<tag>")
        state = state["state_dict"]
    try:
        clip.model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise UserError(f"phase_a.checkpoint {path} does not fit {clip.model_name}: "
                        f"{first_line_of(error)}") from None


def fine_tune_clip(clip, data, cfg: dict, templates, ctx) -> None:
    """Phase A: fine-tune `clip` in place, or load / reuse a finished phase A."""
    phase = cfg["phase_a"]
    if phase["checkpoint"]:
        load_phase_a_checkpoint(clip, phase["checkpoint"])
        ctx.outputs.artifacts[PHASE_A.artifact] = str(Path(phase["checkpoint"]).expanduser().resolve())
        return
    if int(phase["epochs"]) == 0:
        ctx.log("phase A: 0 epochs, phase B runs on the backbone's own weights")
        return
    PHASE_A.reuse_or_train(ctx, clip.label, phase_a_identity(cfg, ctx.precision), load=lambda path: load_phase_a_checkpoint(clip, path),
                           train=lambda work_dir: _train_phase_a(clip, data, phase, templates, ctx, work_dir))


def _train_phase_a(clip, data, phase: dict, templates, ctx, work_dir):
    train = data.split("train")
    prompts = [template.format(name) for name in data.class_names for template in templates]
    contrastive = phase["loss"] == "contrastive"
    tuner = ClipFineTuner(clip.model, clip.tokenize(prompts), phase["logit_scale"], phase["batchnorm"],
                          global_pairs=contrastive).to(ctx.device)
    trainable = set_trainable(clip.model, phase["trainable"], phase["last_blocks"])
    if trainable == 0:
        raise UserError("phase A has nothing to train: phase_a.trainable=last_blocks with last_blocks=0 and no "
                        "head parameters; raise phase_a.last_blocks or set phase_a.epochs=0")
    total = sum(p.numel() for p in clip.model.parameters())
    ctx.log(f"phase A: {phase['loss']} loss, {trainable:,} of {total:,} parameters train")
    sampler = build_sampler(phase["sampler"], train.labels, seed=ctx.seed)
    images, steps = clip_image_stream(train, clip, phase, sampler, ctx, "phase_a")
    batches = PromptBatches(images, data.num_classes, len(templates), phase["loss"], ctx.seed,
                            prompt_lengths=tuner.prompt_lengths)
    loss = global_batch_contrastive if contrastive else F.cross_entropy
    trainer = ctx.trainer(phase, name="phase_a", work_dir=work_dir)
    trainer.fit(tuner, batches, steps, loss_fn=loss)
    state = {"format": CHECKPOINT_FORMAT, "model_name": clip.model_name, "backbone": clip.label,
             "phase_a": {k: v for k, v in phase.items() if k != "checkpoint"}, "state_dict": clip.model.state_dict()}
    return state, trainer
