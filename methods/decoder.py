"""Imbalance-VLM (Wang et al. 2023): a lightweight transformer decoder on the tokens of a frozen
CLIP image encoder, trained with an imbalance-aware loss (stage 1), optionally followed by a
second stage on the frozen stage-1 model: DisAlign, cRT or LWS.

Registered names: `decoder` (loss from config, CE default), `decoder_ce`, `decoder_bs` (Balanced
Softmax), `decoder_focal`, and the second stages `decoder_disalign`, `decoder_crt`, `decoder_lws`.
Their settings live in benchmarks/methods/decoder*.yaml (the variants name decoder.yaml as base).

A finished stage 1 is kept under results/work/ in a folder named by a hash of everything it
depends on, so every second stage (and a rerun) on the same stage-1 settings starts from it.
"""
import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ltbench.config import config_hash
from ltbench.data.loading import epoch_batches, image_loader
from ltbench.data.samplers import build_sampler_from_spec
from ltbench.core import distributed
from ltbench.engine.batches import ArrayRowBatches, EpochProgress, TensorBatches
from ltbench.engine.checkpoints import read_stage_checkpoint
from ltbench.engine.features import image_tokens
from ltbench.engine.trainer import save_atomic
from ltbench.core.errors import UserError, first_line_of, unknown_name
from ltbench.losses import build_loss
from ltbench.engine.method import Method
from ltbench.models.calibration import SECOND_STAGES, build_second_stage
from ltbench.models.decoder import TokenDecoder
from ltbench.models.factory import create_backbone
from ltbench.models.fingerprint import state_dict_sha256
from ltbench.core.registry import METHODS
from ltbench.records.results import backbone_slug

CHECKPOINT_FORMAT = "ltbench.decoder.stage1/1"


def iteration_schedule(stage: dict, num_images: int):
    """(steps per epoch, epochs, warmup epochs) for a stage configured in iterations, as the code is.

    An epoch is min(iterations, N // batch) steps, so short runs on small sets still see every
    sampler epoch boundary; the total is rounded up to whole epochs.
    """
    batch_size, iterations = int(stage["batch_size"]), int(stage["iterations"])
    steps = max(1, min(iterations, num_images // batch_size))
    epochs = math.ceil(iterations / steps)
    return steps, epochs, float(stage.get("warmup_iterations", 0)) / steps


def stage1_identity(cfg: dict) -> dict:
    """Everything the stage-1 weights depend on (the seed goes into the folder name)."""
    stage = {key: value for key, value in cfg["stage1"].items() if key != "checkpoint"}
    return {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"], "decoder": cfg["decoder"],
            "loss": cfg["loss"], "stage1": stage, "amp": cfg["amp"]}


class Decoder(Method):
    """Imbalance-VLM decoder on frozen CLIP tokens; the loss comes from the config (CE by default)."""

    def fit(self, data, ctx):
        cfg = self.cfg
        self.encoder = create_backbone(cfg["backbone"]["clip"], ctx.device)
        if not hasattr(self.encoder, "encode_tokens"):
            raise UserError(f"method '{cfg['method']}' needs an open_clip backbone (its image tokens), "
                            f"got '{cfg['backbone']['clip']}'")
        self.encoder.model.eval().requires_grad_(False)
        self._split_features = {}
        self.decoder = self._build_decoder(data.num_classes, ctx)
        with ctx.timer("stage1"):
            self._stage1(data, ctx)
        self.decoder.eval().requires_grad_(False)
        self.head = self.decoder.head
        kind = cfg["stage2"]["type"]
        if kind not in SECOND_STAGES:
            raise unknown_name("stage2.type", kind, SECOND_STAGES)
        if kind != "none":
            with ctx.timer("stage1_eval"):
                eval_split = data.split(cfg["eval_split"])
                ctx.report("after_stage1", self.predict(eval_split, ctx), eval_split)
            with ctx.timer("stage2"):
                self.head = self._stage2(kind, data, ctx)

    # --- stage 1 -------------------------------------------------------------------------------
    def _build_decoder(self, num_classes, ctx):
        options = self.cfg["decoder"]
        return TokenDecoder(self.encoder.token_width, num_classes, depth=int(options["depth"]),
                            heads=int(options["heads"]), mlp_ratio=float(options["mlp_ratio"])).to(ctx.device)

    def _stage1(self, data, ctx):
        stage = self.cfg["stage1"]
        if stage["checkpoint"]:
            self._load_stage1(stage["checkpoint"])
            ctx.artifacts["stage1_checkpoint"] = str(Path(stage["checkpoint"]).expanduser().resolve())
            return
        key = config_hash(stage1_identity(self.cfg))[:10]
        work_dir = ctx.shared_work_dir(f"decoder_stage1__{backbone_slug(self.encoder.label)}__{key}__seed{ctx.seed}")
        final = work_dir / "stage1.pt"
        ctx.artifacts["stage1_checkpoint"] = str(final.resolve())
        if final.exists():
            ctx.log(f"stage 1: reusing the finished stage 1 in {final} (delete it to train again)")
            self._load_stage1(final)
            return
        train = data.split("train")
        steps, epochs, warmup = iteration_schedule(stage, len(train))
        batch_size = int(stage["batch_size"])
        sampler = build_sampler_from_spec(stage["sampler"], train.labels, num_samples=steps * batch_size,
                                          seed=ctx.seed)
        if stage["tokens_cache"]:
            if stage["augment"]["enabled"]:
                raise UserError("stage1.tokens_cache needs stage1.augment.enabled=false: augmented images "
                                "have new tokens every step")
            tokens = image_tokens(self.encoder, train, ctx, batch_size=self.cfg["eval_batch_size"])
            batches, forward = ArrayRowBatches(tokens, train.labels, sampler, batch_size), None
        else:
            batches = epoch_batches(train, self.encoder.eval_transform, stage["augment"], batch_size, sampler,
                                    seed=ctx.seed, num_workers=ctx.num_workers,
                                    pin_memory=ctx.device.type == "cuda")
            forward = self._encode_then_decode
        loss, class_counts = build_loss(self.cfg["loss"]), data.class_counts
        batches = EpochProgress(batches, epochs)
        trainer = ctx.trainer({**stage, "epochs": epochs, "warmup_epochs": warmup}, name="stage1", work_dir=work_dir)
        trainer.fit(self.decoder, batches, steps, forward=forward,
                    loss_fn=lambda logits, targets: loss(logits, targets, class_counts, progress=batches.value))
        save_atomic({"format": CHECKPOINT_FORMAT, "model_name": self.encoder.spec.model,
                     "decoder": dict(self.cfg["decoder"]), "state_dict": self.decoder.state_dict()}, final)
        trainer.checkpoint_path.unlink(missing_ok=True)  # the optimizer state is not needed again
        ctx.log(f"stage 1: saved {final}")

    def _encode_then_decode(self, decoder, images):
        with torch.no_grad():
            tokens = self.encoder.encode_tokens(images)
        return decoder(tokens)

    def _load_stage1(self, path):
        state = read_stage_checkpoint(path, "stage1.checkpoint", "stage1.pt", "decoder")
        written_for = state.get("model_name") if isinstance(state, dict) else None
        if written_for and written_for != self.encoder.spec.model:
            raise UserError(f"stage1.checkpoint {path} was written for backbone model {written_for}, but "
                            f"this run's backbone is {self.encoder.label}")
        try:
            self.decoder.load_state_dict(state["state_dict"])
        except Exception as error:
            raise UserError(f"stage1.checkpoint {path} does not fit this decoder ({first_line_of(error)}); "
                            "the decoder.* settings must match the run that wrote it") from None

    # --- features of the frozen stage-1 model ------------------------------------------------------
    @torch.no_grad()
    def _features(self, split, ctx) -> torch.Tensor:
        """Stage-1 decoder features [N, width] of a split, computed once per run (in a
        distributed run each process decodes a block of the split; the blocks are gathered)."""
        if split.fingerprint in self._split_features:
            return self._split_features[split.fingerprint]
        batch_size = int(self.cfg["eval_batch_size"])
        rows = distributed.shard_rows(len(split))
        count = len(split) if rows is None else len(rows)
        if self.cfg["stage1"]["tokens_cache"]:
            tokens = image_tokens(self.encoder, split, ctx, batch_size=batch_size)
            rows = np.arange(len(split)) if rows is None else np.asarray(rows)
            chunks = (torch.from_numpy(np.asarray(tokens[rows[start: start + batch_size]], dtype=np.float32))
                      for start in range(0, count, batch_size))
        else:
            loader = image_loader(split, self.encoder.eval_transform, batch_size, sampler=rows,
                                  num_workers=ctx.num_workers, pin_memory=ctx.device.type == "cuda")
            chunks = (images for images, _ in loader)
        self.decoder.eval()
        features = []
        for chunk in tqdm(chunks, total=math.ceil(count / batch_size), desc=f"decode {split.name}",
                          disable=not ctx.show_progress, leave=False):
            chunk = chunk.to(ctx.device, non_blocking=True)
            with ctx.autocast():
                tokens = chunk if self.cfg["stage1"]["tokens_cache"] else self.encoder.encode_tokens(chunk)
                features.append(self.decoder.features(tokens).float())
        self._split_features[split.fingerprint] = distributed.gather_rows(torch.cat(features), len(split))
        return self._split_features[split.fingerprint]

    # --- stage 2 -------------------------------------------------------------------------------
    def _stage2(self, kind, data, ctx):
        stage = self.cfg["stage2"]
        train = data.split("train")
        head = build_second_stage(kind, self.decoder.head).to(ctx.device)
        steps, epochs, warmup = iteration_schedule(stage, len(train))
        batch_size = int(stage["batch_size"])
        sampler = build_sampler_from_spec(stage["sampler"], train.labels, num_samples=steps * batch_size,
                                          seed=ctx.seed)
        batches = TensorBatches(self._features(train, ctx), torch.from_numpy(train.labels).to(ctx.device),
                                sampler, batch_size)
        loss, class_counts = build_loss(stage["loss"]), data.class_counts
        # The stage-1 weights are what this stage's checkpoint must agree with on --resume.
        identity = state_dict_sha256(self.decoder)
        ctx.trainer({**stage, "epochs": epochs, "warmup_epochs": warmup}, name="stage2", identity=identity).fit(
            head, batches, steps, loss_fn=lambda logits, targets: loss(logits, targets, class_counts))
        head.eval().requires_grad_(False)
        return head

    @torch.no_grad()
    def predict(self, split, ctx) -> np.ndarray:
        self.head.eval()
        return self.head(self._features(split, ctx)).float().cpu().numpy()


def _variant(name: str, doc: str):
    """A registered name for one setting of the family (its YAML holds the setting)."""
    cls = type(f"Decoder_{name}", (Decoder,), {"__doc__": doc})
    METHODS.register_module(name=name, module=cls)
    return cls


METHODS.register_module(name="decoder", module=Decoder)
_variant("decoder_ce", "Imbalance-VLM decoder on frozen CLIP tokens, cross-entropy.")
_variant("decoder_bs", "Imbalance-VLM decoder on frozen CLIP tokens, Balanced Softmax (CE on z + log p_c).")
_variant("decoder_focal", "Imbalance-VLM decoder on frozen CLIP tokens, Focal loss (gamma 2).")
_variant("decoder_disalign", "Imbalance-VLM decoder + DisAlign second stage (confidence-gated per-class scale and bias, GRW loss).")
_variant("decoder_crt", "Imbalance-VLM decoder + cRT second stage (classifier re-trained with class-balanced sampling).")
_variant("decoder_lws", "Imbalance-VLM decoder + LWS second stage (per-class logit scale, class-balanced sampling).")
