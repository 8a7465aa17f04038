"""CoOp prompt tuning (Zhou et al., IJCV 2022) as Imbalance-VLM compares it: learnt context
vectors in every class's prompt, both CLIP encoders frozen, logits = scale x cos(f, g(prompt_c)).

Every step encodes all C prompts with gradients to the context, in length-sorted chunks under
activation checkpointing (ClipModel.encode_prompt_embeddings), so memory holds one chunk's
activations plus the [C, D] features. Under torchrun each process encodes a share of the classes
(C / world_size prompts a step) and the shares are gathered with their gradients; the logits and
the loss are then those of the global batch (every process's image features and labels
gathered), computed whole in every process, which makes the gathered gradients exact. The image side is frozen: without augmentation the image
features come from the feature cache and an epoch costs only the text side; with augmentation
(CoOp's code: random resized crop + flip) each batch's images are encoded without gradients.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltbench.api import (
    Method,
    Stage,
    TensorBatches,
    TrainingProgress,
    UserError,
    build_loss,
    build_sampler,
    create_clip_backbone,
    image_features,
)
from ltbench.api.finetune import clip_train_batches
from ltbench.api.heads import no_autocast
from ltbench.api.options import first_line_of
from ltbench.api.training import gather_batch
from ltbench.methods.prompt_tuning.options import OPTIONS
from ltbench.methods.prompt_tuning.prompts import PromptLearner, class_prompts, initial_context, phrase_ids
from ltbench.methods.prompt_tuning.settings import context_identity

CHECKPOINT_FORMAT = "ltbench.prompt_tuning.context/1"
CONTEXT = Stage(name="prompt_tuning", label="prompt tuning", file_name="context.pt", artifact="prompt_context")


class PromptTuner(nn.Module):
    """Logits of image features against the text features of every class's learnt prompt. Only
    the learner is a submodule: the frozen CLIP stays out of the parameters, the epoch
    checkpoints and the train / eval switch."""

    def __init__(self, clip, learner: PromptLearner, logit_scale: float, chunk: int, checkpointing: bool):
        super().__init__()
        self.learner = learner
        self.clip, self.logit_scale, self.chunk, self.checkpointing = clip, float(logit_scale), chunk, checkpointing

    def text_features(self) -> torch.Tensor:
        """[C, D] L2-normalised features of the C prompts (under torchrun each process encodes a
        share, and every process gets them all)."""
        return self.clip.encode_prompt_embeddings(self.learner.embeddings, self.learner.tokens, self.chunk,
                                                  self.checkpointing, self.learner.lengths, shard=True)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """[B, C] logits of the global batch: under torchrun every process's image features (the
        labels go with them: ``global_targets``); one process: its own batch."""
        text = self.text_features()  # the text tower under the run's autocast
        with no_autocast():  # the logits in float32 (api.heads.no_autocast)
            return self.logit_scale * gather_batch(image_features.float()) @ text.float().t()


def global_targets(targets: torch.Tensor) -> torch.Tensor:
    """The labels of PromptTuner's global-batch logits (in rank order, as the features)."""
    return gather_batch(targets)


def build_tuner(clip, class_names, options: dict, seed: int, logit_scale, chunk: int, checkpointing: bool,
                device) -> PromptTuner:
    """The CoOp model of a run (also what benchmarks/perf times): prompts laid out from
    `options` (the config's context section), the context initialised from (seed, purpose)."""
    tokens, slots = class_prompts(clip, list(class_names), int(options["n_ctx"]), options["class_position"])
    learner = PromptLearner(initial_context(clip, options, len(class_names), seed), tokens, slots,
                            clip.token_embeddings)
    scale = clip.learnt_logit_scale if logit_scale == "clip" else float(logit_scale)
    return PromptTuner(clip, learner, scale, int(chunk), bool(checkpointing)).to(device)


class PromptTuning(Method):
    """CoOp prompt tuning: M learnt context vectors in every class prompt, frozen CLIP; loss from the config (CE)."""

    options = OPTIONS

    def fit(self, data, ctx):
        cfg = self.cfg
        self.clip = create_clip_backbone(cfg["backbone"]["clip"], ctx.device, cfg["method"])
        if not self.clip.takes_prompt_embeddings:
            raise UserError(f"method '{cfg['method']}' needs an open_clip causal text tower (argmax or eos pooling), "
                            f"which backbone '{self.clip.label}' does not have")
        self.clip.freeze()
        options = cfg["context"]
        if options["init"] == "phrase":
            phrase_ids(self.clip, options)  # a phrase longer than the context fails before any work
        self.loss = build_loss(cfg["loss"])
        ctx.trainer(cfg["train"], name="train")  # checks the training settings (warmup_lr, ...) before any work
        self.tuner = build_tuner(self.clip, data.class_names, options, ctx.seed, cfg["logit_scale"], cfg["text_chunk"],
                                 cfg["checkpointing"], ctx.device)
        context = self.tuner.learner.ctx
        ctx.outputs.details["prompt_tuning"] = {"logit_scale": self.tuner.logit_scale,
                                                "context_shape": list(context.shape),
                                                "trained_parameters": context.numel()}
        with ctx.timer("prompt_tuning"):
            if options["checkpoint"]:
                self._load(options["checkpoint"])
                ctx.outputs.artifacts[CONTEXT.artifact] = str(Path(options["checkpoint"]).expanduser().resolve())
            else:
                CONTEXT.reuse_or_train(ctx, self.clip.label, context_identity(cfg, ctx.precision), load=self._load,
                                       train=lambda work_dir: self._train(data, ctx, work_dir))
        self.tuner.eval().requires_grad_(False)
        with torch.no_grad(), ctx.autocast():
            self.classifier = self.tuner.text_features().float()

    def _train(self, data, ctx, work_dir):
        train_cfg = self.cfg["train"]
        train = data.split("train")
        batch_size = int(train_cfg["batch_size"])
        sampler = build_sampler(train_cfg["sampler"], train.labels, seed=ctx.seed)
        augment = train_cfg["augment"]
        if augment["enabled"]:
            images = clip_train_batches(train, self.clip, augment, batch_size, sampler, ctx)
            steps, forward = -(-len(sampler) // batch_size), self._encode_then_tune
        else:
            features = self._features(train, ctx)
            images = TensorBatches(features, torch.from_numpy(train.labels).to(ctx.device), sampler, batch_size)
            steps, forward = images.steps_per_epoch, None
        class_counts, progress = data.class_counts, TrainingProgress()
        ctx.log(f"prompt tuning: {self.tuner.learner.ctx.numel():,} context parameters train, "
                f"{data.num_classes} prompts encoded every step")
        trainer = ctx.trainer(train_cfg, name="train", work_dir=work_dir)
        trainer.fit(self.tuner, images, steps, forward=forward, hooks=[progress],
                    loss_fn=lambda logits, targets: self.loss(logits, global_targets(targets), class_counts,
                                                              progress=progress.value))
        state = {"format": CHECKPOINT_FORMAT, "model_name": self.clip.model_name, "backbone": self.clip.label,
                 "class_names": list(data.class_names), "context": dict(self.cfg["context"]),
                 "ctx": self.tuner.learner.ctx.detach().cpu()}
        return state, trainer

    def _encode_then_tune(self, tuner, images):
        with torch.no_grad():
            features = self.clip.encode_images(images)
        return tuner(features)

    def _load(self, path):
        state = CONTEXT.read_checkpoint(path, "context.checkpoint", "prompt_tuning")
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"context.checkpoint {path} is not a learnt context of prompt_tuning "
                            f"(format {CHECKPOINT_FORMAT})")
        if state.get("model_name") != self.clip.model_name:
            raise UserError(f"context.checkpoint {path} was learnt for backbone model {state.get('model_name')}, "
                            f"but this run's backbone is {self.clip.label}")
        learnt, ctx_param = state["ctx"], self.tuner.learner.ctx
        if tuple(learnt.shape) != tuple(ctx_param.shape):
            raise UserError(f"context.checkpoint {path} holds a context of shape {tuple(learnt.shape)}, this run's "
                            f"is {tuple(ctx_param.shape)}; context.n_ctx and context.class_specific must match it")
        try:
            with torch.no_grad():
                ctx_param.copy_(learnt.to(ctx_param.device))
        except RuntimeError as error:
            raise UserError(f"context.checkpoint {path}: {first_line_of(error)}") from None

    def _features(self, split, ctx) -> torch.Tensor:
        return image_features(self.clip, split, ctx, batch_size=self.cfg["eval_batch_size"], device=ctx.device)

    def predict(self, split, ctx) -> np.ndarray:
        features = self._features(split, ctx)
        return (self.tuner.logit_scale * features @ self.classifier.t()).cpu().numpy()
