"""The Imbalance-VLM decoder method: stage 1 on frozen CLIP tokens, then an optional second stage."""
from pathlib import Path

import numpy as np
import torch

from ltbench.api import (
    BestOnVal,
    Method,
    Stage,
    TensorBatches,
    TrainingProgress,
    UserError,
    build_loss,
    build_sampler,
    create_backbone,
    seeded,
)
from ltbench.api.calibration import (
    build_second_stage,
    choose_on_val,
    save_linear_head,
    select_tau,
    state_dict_sha256,
    tau_normalised,
)
from ltbench.api.images import encode_split, epoch_batches, image_tokens
from ltbench.api.options import first_line_of
from ltbench.api.training import ArrayRowBatches, PerSplit
from ltbench.methods.decoder.model import TokenDecoder
from ltbench.methods.decoder.options import OPTIONS
from ltbench.methods.decoder.settings import decoder_transform, iteration_schedule, stage1_identity, tau_grid

CHECKPOINT_FORMAT = "ltbench.decoder.stage1/1"
STAGE1 = Stage(name="decoder_stage1", label="stage 1", file_name="stage1.pt", artifact="stage1_checkpoint")


class Decoder(Method):
    """Imbalance-VLM decoder on frozen CLIP tokens; the loss comes from the config (CE by default)."""

    options = OPTIONS

    @classmethod
    def saves_linear_head(cls, cfg: dict) -> bool:
        """Whether a run of `cfg` leaves its final head as the `linear_head` artifact (posthoc_taunorm
        asks before any work): DisAlign, LWS and MARC heads are not linear maps."""
        return cfg["stage2"]["type"] in ("none", "crt", "taunorm")

    def fit(self, data, ctx):
        cfg = self.cfg
        self.encoder = create_backbone(cfg["backbone"]["clip"], ctx.device)
        if not self.encoder.is_clip:
            raise UserError(f"method '{cfg['method']}' needs an open_clip backbone (its image tokens), "
                            f"got '{cfg['backbone']['clip']}'")
        self.encoder.freeze()
        kind = cfg["stage2"]["type"]
        self.transform = decoder_transform(cfg["preprocess"], self.encoder)
        # Features of the frozen stage-1 model, computed once per split and run.
        self._features = PerSplit(lambda split: self._decode(split, ctx))
        self.decoder = self._build_decoder(data.num_classes, ctx)
        with ctx.timer("stage1"):
            self._stage1(data, ctx)
        self.decoder.eval().requires_grad_(False)
        self.head = self.decoder.head
        if kind != "none":
            with ctx.timer("stage1_eval"):
                eval_split = data.split(cfg["eval_split"])
                ctx.report("after_stage1", self.predict(eval_split, ctx), eval_split)
            with ctx.timer("stage2"):
                self.head = self._stage2(kind, data, ctx)
        # A linear final head (stage 2 none, crt or taunorm) is saved beside the record for posthoc_taunorm.
        save_linear_head(ctx, self.head)

    # --- stage 1 -------------------------------------------------------------------------------
    def _build_decoder(self, num_classes, ctx):
        options = self.cfg["decoder"]
        with seeded(ctx.seed, "decoder", "stage1", "init"):
            decoder = TokenDecoder(self.encoder.token_width, num_classes, depth=int(options["depth"]),
                                   heads=int(options["heads"]), mlp_ratio=float(options["mlp_ratio"]),
                                   final_norm=options["final_norm"])
        return decoder.to(ctx.device)

    def _stage1(self, data, ctx):
        stage = self.cfg["stage1"]
        if stage["checkpoint"]:
            self._load_stage1(stage["checkpoint"])
            ctx.outputs.artifacts[STAGE1.artifact] = str(Path(stage["checkpoint"]).expanduser().resolve())
            return
        STAGE1.reuse_or_train(ctx, self.encoder.label, stage1_identity(self.cfg, ctx.precision),
                              load=self._load_stage1,
                              train=lambda work_dir: self._train_stage1(data, ctx, work_dir))

    def _train_stage1(self, data, ctx, work_dir):
        stage = self.cfg["stage1"]
        train = data.split("train")
        steps, epochs, warmup = iteration_schedule(stage, len(train))
        batch_size = int(stage["batch_size"])
        sampler = build_sampler(stage["sampler"], train.labels, num_samples=steps * batch_size, seed=ctx.seed)
        if stage["tokens_cache"]:
            if stage["augment"]["enabled"]:
                raise UserError("stage1.tokens_cache needs stage1.augment.enabled=false: augmented images "
                                "have new tokens every step")
            tokens = image_tokens(self.encoder, train, ctx, batch_size=self.cfg["eval_batch_size"],
                                  transform=self.transform)
            batches, forward = ArrayRowBatches(tokens, train.labels, sampler, batch_size, ctx.device), None
        else:
            batches = epoch_batches(train, self.transform, stage["augment"], batch_size, sampler,
                                    seed=ctx.seed, num_workers=ctx.num_workers,
                                    pin_memory=ctx.device.type == "cuda", device=ctx.device)
            forward = self._encode_then_decode
        loss, class_counts, progress = build_loss(self.cfg["loss"]), data.class_counts, TrainingProgress()
        trainer = ctx.trainer({**stage, "epochs": epochs, "warmup_epochs": warmup}, name="stage1", work_dir=work_dir)
        hooks = self._selection("stage1", self.decoder, lambda val: self.decoder.head(self._decode(val, ctx)),
                                data, ctx, work_dir)
        trainer.fit(self.decoder, batches, steps, forward=forward,
                    loss_fn=lambda logits, targets: loss(logits, targets, class_counts, progress=progress.value),
                    hooks=[progress, *hooks])
        state = {"format": CHECKPOINT_FORMAT, "model_name": self.encoder.model_name,
                 "decoder": dict(self.cfg["decoder"]), "state_dict": self.decoder.state_dict()}
        return state, trainer

    def _encode_then_decode(self, decoder, images):
        with torch.no_grad():
            tokens = self.encoder.encode_tokens(images)
        return decoder(tokens)

    def _load_stage1(self, path):
        state = STAGE1.read_checkpoint(path, "stage1.checkpoint", "decoder")
        written_for = state.get("model_name") if isinstance(state, dict) else None
        if written_for and written_for != self.encoder.model_name:
            raise UserError(f"stage1.checkpoint {path} was written for backbone model {written_for}, but "
                            f"this run's backbone is {self.encoder.label}")
        try:
            self.decoder.load_state_dict(state["state_dict"])
        except Exception as error:
            raise UserError(f"stage1.checkpoint {path} does not fit this decoder ({first_line_of(error)}); "
                            "the decoder.* settings must match the run that wrote it") from None

    # --- features of the stage-1 model ----------------------------------------------------------
    def _decode(self, split, ctx) -> torch.Tensor:
        """Decoder features [N, width] of a split, on the device; leaves the decoder in eval mode."""
        self.decoder.eval()
        cached = self.cfg["stage1"]["tokens_cache"]
        batch_size = int(self.cfg["eval_batch_size"])
        tokens = image_tokens(self.encoder, split, ctx, batch_size=batch_size, transform=self.transform) \
            if cached else None
        encode = self.decoder.features if cached else (lambda images: self.decoder.features(
            self.encoder.encode_tokens(images)))
        return encode_split(split, ctx, batch_size, encode, transform=self.transform, inputs=tokens,
                            desc=f"decode {split.name}", device=ctx.device)

    # --- selection on val ------------------------------------------------------------------------
    def _selection(self, name, module, val_logits, data, ctx, work_dir=None) -> list:
        """The trainer hooks of a stage: with select=best_val, the best-on-val keeper."""
        if self.cfg[name]["select"] == "last":
            return []
        val, origin = choose_on_val(data, self.cfg["eval_split"], f"{name}'s best epoch ({name}.select=best_val)", ctx)
        ctx.outputs.details[f"{name}_select"] = {"select": "best_val", "selected_on": origin}
        labels = torch.from_numpy(val.labels).to(ctx.device)
        return [BestOnVal(module, lambda: val_logits(val), labels, Path(work_dir or ctx.work_dir) / f"{name}_best.pt",
                          ctx.resume, ctx.outputs.details[f"{name}_select"])]

    # --- stage 2 -------------------------------------------------------------------------------
    def _stage2(self, kind, data, ctx):
        if kind == "taunorm":
            return self._taunorm(data, ctx)
        stage = self.cfg["stage2"]
        train = data.split("train")
        # The disalign_* keys of stage2 are DisAlign's options; the other heads take none.
        options = {key: stage[key] for key in ("disalign_form", "disalign_confidence_weight") if kind == "disalign"}
        with seeded(ctx.seed, "decoder", "stage2", kind, "init"):
            head = build_second_stage(kind, self.decoder.head, **options)
        head = head.to(ctx.device)
        steps, epochs, warmup = iteration_schedule(stage, len(train))
        batch_size = int(stage["batch_size"])
        sampler = build_sampler(stage["sampler"], train.labels, num_samples=steps * batch_size, seed=ctx.seed)
        batches = TensorBatches(self._features(train), torch.from_numpy(train.labels).to(ctx.device),
                                sampler, batch_size)
        loss, class_counts = build_loss(stage["loss"]), data.class_counts
        hooks = self._selection("stage2", head, lambda val: head(self._features(val)), data, ctx)
        # The stage-1 weights are what this stage's checkpoint must agree with on --resume.
        identity = state_dict_sha256(self.decoder)
        ctx.trainer({**stage, "epochs": epochs, "warmup_epochs": warmup}, name="stage2", identity=identity).fit(
            head, batches, steps, loss_fn=lambda logits, targets: loss(logits, targets, class_counts),
            hooks=hooks)
        head.eval().requires_grad_(False)
        return head

    def _taunorm(self, data, ctx):
        """tau-normalisation: no training; tau is the grid value best on val."""
        grid = tau_grid(self.cfg["stage2"])
        val, origin = choose_on_val(data, self.cfg["eval_split"], "tau (tau-normalisation)", ctx)
        labels = torch.from_numpy(val.labels).to(ctx.device)
        tau, accuracies = select_tau(self.decoder.head, self._features(val), labels, grid)
        ctx.outputs.details["taunorm"] = {"tau_grid": grid, "selected_on": origin,
                                  "val_top1": accuracies, "tau": tau}
        ctx.log(f"tau-normalisation: tau {tau:g} chosen on {origin} (top-1 {max(accuracies):.2f})")
        return tau_normalised(self.decoder.head, tau)

    @torch.no_grad()
    def predict(self, split, ctx) -> np.ndarray:
        self.head.eval()
        return self.head(self._features(split)).float().cpu().numpy()


