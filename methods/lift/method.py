"""The LIFT method: a frozen CLIP ViT with PEFT modules and a text-initialised cosine classifier,
trained end to end on images with the logit-adjusted loss through the shared trainer."""
import numpy as np
import torch
from torch import nn

from ltbench.api import (
    METHODS,
    Method,
    Stage,
    UserError,
    build_loss,
    build_sampler,
    create_clip_backbone,
    seeded,
    templates_by_name,
    text_classifier,
)
from ltbench.api.heads import build_head
from ltbench.api.images import encode_split, epoch_batches
from ltbench.api.peft import PeftViT, text_head_weights
from ltbench.methods.lift.options import OPTIONS, peft_options
from ltbench.methods.lift.preprocess import ensemble_logits, eval_transform, tte_transform

# head.init random: the code's init_head None keeps its _Classifier's rows, uniform(-1, 1)
# renormalised to length 1 (models/classifiers.py).
RANDOM_HEAD_ROWS = "uniform_unit"
CHECKPOINT_FORMAT = "ltbench.lift/1"
# The trained modules and head are a stage: runs that differ only in how they test (tte) reuse them,
# as the code's `test_only True tte True` reuses its checkpoint.
TRAINING = Stage(name="lift_train", label="LIFT training", file_name="lift.pt", artifact="lift_checkpoint")
# Everything the trained weights depend on besides the dataset, the backbone and the seed.
TRAINING_KEYS = ("peft", "head", "loss", "train", "text", "preprocess")


def training_identity(cfg: dict, clip, precision: str) -> dict:
    """What the trained weights depend on (the seed goes into the stage's folder name): the frozen
    weights by their hash, so a changed checkpoint file never reuses another's stage, and the
    precision the run trains at (ctx.precision: bf16 only with amp on CUDA), not the amp setting
    a CPU run ignores."""
    identity = {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"],
                "weights": {"visual": clip.visual_fingerprint(), "text": clip.text_fingerprint()},
                **{key: cfg[key] for key in TRAINING_KEYS}, "precision": precision}
    if cfg["head"]["init"] == "random":
        # The rows it starts from: a stage trained from ltbench's former Gaussian rows is not reused.
        identity["head_rows"] = RANDOM_HEAD_ROWS
    identity["jpeg_draft"] = cfg["jpeg_draft"]
    return identity


class LiftModel(nn.Module):
    """images -> logits: the PEFT tower's features through the cosine classifier."""

    def __init__(self, tower: PeftViT, head: nn.Module):
        super().__init__()
        self.tower, self.head = tower, head

    def forward(self, images):
        return self.head(self.tower(images))


def lift_head(head_cfg: dict, out_dim: int, num_classes: int, text_init=None) -> nn.Module:
    """The cosine classifier: rows from the class text features (head.init text), or the code's
    random rows (head.init random), drawn from torch's global RNG (the caller seeds it)."""
    return build_head("cosine", out_dim, num_classes, float(head_cfg["scale"]), text_init, random_init=RANDOM_HEAD_ROWS)


@METHODS.register_module(name="lift")
class Lift(Method):
    """LIFT: frozen CLIP ViT + lightweight PEFT (AdaptFormer by default, peft.type), text-initialised cosine head, logit-adjusted loss."""

    options = OPTIONS

    def fit(self, data, ctx):
        cfg = self.cfg
        self.clip = create_clip_backbone(cfg["backbone"]["clip"], ctx.device, cfg["method"])
        visual = self.clip.visual_tower()
        peft, head_cfg = cfg["peft"], cfg["head"]
        # Every random init from (seed, purpose): adapters, prompts and the head alike.
        with seeded(ctx.seed, "lift", "peft"):
            tower = PeftViT(visual, peft["type"], data.num_classes, label=self.clip.label,
                            **peft_options(peft, head_cfg["space"]))
        text_init = None
        if head_cfg["init"] == "text":
            templates = templates_by_name(cfg["text"]["templates"])
            text_init = text_head_weights(text_classifier(self.clip, data.class_names, templates, ctx), visual,
                                          head_cfg["space"]).cpu()
        with seeded(ctx.seed, "lift", "head"):
            head = lift_head(head_cfg, tower.out_dim, data.num_classes, text_init)
        self.model = LiftModel(tower, head).to(ctx.device)
        self.transform = ctx.image_transform(eval_transform(self.clip.eval_transform, cfg["preprocess"]))
        head_parameters = sum(p.numel() for p in head.parameters())
        ctx.outputs.details["lift"] = {
            "peft": peft["type"], "bottleneck": tower.bottleneck, "tuned_blocks": tower.tuned_blocks,
            "trained_parameters": {"peft": tower.trained_parameters, "head": head_parameters,
                                   "total": tower.trained_parameters + head_parameters},
            "tte": cfg["tte"]["crops"] if cfg["tte"]["enabled"] else "off"}
        ctx.log(f"lift: {peft['type']}, {tower.trained_parameters:,} PEFT + {head_parameters:,} head parameters train")
        with ctx.timer("train"):
            TRAINING.reuse_or_train(ctx, self.clip.label, training_identity(cfg, self.clip, ctx.precision),
                                    load=self._load,
                                    train=lambda work_dir: self._train(data, ctx, work_dir))

    def _trained_state(self) -> dict:
        return {name: p.detach() for name, p in self.model.named_parameters() if p.requires_grad}

    def _load(self, path):
        state = TRAINING.read_checkpoint(path, "the LIFT stage", "LIFT")
        trained = state.get("trained") if isinstance(state, dict) else None
        if not isinstance(trained, dict) or state.get("format") != CHECKPOINT_FORMAT \
                or set(trained) != set(self._trained_state()):
            raise UserError(f"{path} is not a LIFT stage of this configuration; delete it to train again")
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if name in trained:
                    parameter.copy_(trained[name])

    def _train(self, data, ctx, work_dir):
        cfg, train_cfg = self.cfg, self.cfg["train"]
        train = data.split("train")
        sampler = build_sampler(train_cfg["sampler"], train.labels, seed=ctx.seed)
        batch_size = int(train_cfg["batch_size"])
        batches = epoch_batches(train, self.transform, train_cfg["augment"], batch_size, sampler, seed=ctx.seed,
                                num_workers=ctx.num_workers, pin_memory=ctx.device.type == "cuda", device=ctx.device)
        steps = -(-len(sampler) // batch_size)  # the code's loader keeps the last partial batch
        loss, class_counts = build_loss(cfg["loss"]), data.class_counts
        # --resume continues only on the same frozen weights (the head starts from their text features).
        identity = {"visual": self.clip.visual_fingerprint(), "text": self.clip.text_fingerprint()}
        trainer = ctx.trainer(train_cfg, name="lift", work_dir=work_dir, identity=identity)
        trainer.fit(self.model, batches, steps, loss_fn=lambda logits, targets: loss(logits, targets, class_counts))
        return {"format": CHECKPOINT_FORMAT, "backbone": self.clip.label,
                "trained": {name: tensor.cpu() for name, tensor in self._trained_state().items()}}, trainer

    def predict(self, split, ctx) -> np.ndarray:
        self.model.eval()
        tte = self.cfg["tte"]
        if tte["enabled"]:
            transform = tte_transform(self.transform, tte)

            def encode(views):
                return ensemble_logits(self.model, views)
        else:
            transform, encode = self.transform, self.model
        with torch.no_grad():
            logits = encode_split(split, ctx, int(self.cfg["eval_batch_size"]), encode, transform=transform,
                                  desc=f"lift {split.name}")
        return logits.numpy()
