"""The LIFT family: a frozen ViT (CLIP's image tower, or a timm ViT) with PEFT modules and a cosine
classifier initialised from the class text features (or, without a text tower, from the class
means of the training features), trained end to end on images with the logit-adjusted loss
through the shared trainer. `lift` and `lift_plus` differ only in their settings
(benchmarks/methods/lift.yaml, lift_plus.yaml)."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ltbench.api import (
    METHODS,
    Method,
    Stage,
    UserError,
    build_loss,
    build_sampler,
    create_backbone,
    seeded,
    templates_by_name,
    text_classifier,
)
from ltbench.api.heads import build_head
from ltbench.api.images import encode_split, epoch_batches, split_subset
from ltbench.api.peft import PeftViT, text_head_weights
from ltbench.api.training import generator
from ltbench.methods.lift.options import OPTIONS, peft_options
from ltbench.methods.lift.preprocess import ensemble_logits, eval_transform, plain_transform, tte_transform

# head.init random: the code's init_head None keeps its _Classifier's rows, uniform(-1, 1)
# renormalised to length 1 (models/classifiers.py).
RANDOM_HEAD_ROWS = "uniform_unit"
CHECKPOINT_FORMAT = "ltbench.lift/1"
# The trained modules and head are a stage: runs that differ only in how they test (tte) reuse them,
# as the code's `test_only True tte True` reuses its checkpoint.
TRAINING = Stage(name="lift_train", label="LIFT training", file_name="lift.pt", artifact="lift_checkpoint")
# Everything the trained weights depend on besides the dataset, the backbone and the seed.
TRAINING_KEYS = ("peft", "head", "loss", "train", "text", "preprocess")


def training_identity(cfg: dict, backbone, precision: str) -> dict:
    """What the trained weights depend on (the seed goes into the stage's folder name): the frozen
    weights by their hash, so a changed checkpoint file never reuses another's stage, and the
    precision the run trains at (ctx.precision: bf16 only with amp on CUDA), not the amp setting
    a CPU run ignores."""
    weights = {"visual": backbone.visual_fingerprint()}
    if backbone.is_clip:
        weights["text"] = backbone.text_fingerprint()
    identity = {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"], "weights": weights,
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



def lift_head(head_cfg: dict, out_dim: int, num_classes: int, init_rows=None) -> nn.Module:
    """The cosine classifier: rows from ``init_rows`` (the class text features, or the class
    means), or the code's random rows (head.init random), drawn from torch's global RNG (the
    caller seeds it)."""
    return build_head("cosine", out_dim, num_classes, float(head_cfg["scale"]), init_rows, random_init=RANDOM_HEAD_ROWS)


def head_init(head_cfg: dict, has_text: bool, label: str) -> str:
    """text, class_mean or random: head.init with auto resolved for the backbone."""
    init = head_cfg["init"]
    if init == "auto":
        return "text" if has_text else "class_mean"
    if init == "text" and not has_text:
        raise UserError(f"head.init=text needs the class text features, and backbone '{label}' has no text tower; "
                        "use head.init=class_mean (the codes' init for their ImageNet-21k ViTs) or auto")
    return init


def class_mean_images(labels: np.ndarray, num_classes: int, per_class, rng: torch.Generator) -> np.ndarray:
    """Which training images the class means come from: all of them (per_class null, LIFT's
    init_head class_mean), or at most ``per_class`` of each class drawn at random (LIFT+'s
    DownSampler(n_max=100)), in split order."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        raise UserError(f"head.init=class_mean: class {missing} has no training image to take a mean of; "
                        "use head.init=random")
    if per_class is None:
        return np.arange(len(labels))
    keys = torch.rand(len(labels), generator=rng).numpy()  # a random order within each class
    order = np.lexsort((keys, labels))
    rank = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.sort(order[rank < per_class])


def class_means(features: torch.Tensor, labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """[C, D] L2-normalised mean feature of each class (the codes' class_mean init)."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=features.device)
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64, device=features.device)
    sums.index_add_(0, labels, features.double())
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1)
    return F.normalize((sums / counts).float(), dim=-1)


@METHODS.register_module(name="lift")
class Lift(Method):
    """LIFT: frozen CLIP ViT + lightweight PEFT (AdaptFormer by default, peft.type), text-initialised cosine head, logit-adjusted loss."""

    options = OPTIONS

    def fit(self, data, ctx):
        cfg = self.cfg
        self.backbone = create_backbone(cfg["backbone"]["clip"], ctx.device)
        backbone = self.backbone
        visual = backbone.visual_tower()
        peft, head_cfg = cfg["peft"], cfg["head"]
        init = head_init(head_cfg, backbone.is_clip, backbone.label)
        # Every random init from (seed, purpose): adapters, prompts and the head alike.
        with seeded(ctx.seed, "lift", "peft"):
            tower = PeftViT(visual, peft["type"], data.num_classes, label=backbone.label, seed=ctx.seed,
                            **peft_options(peft, head_cfg["space"]))
        self.transform = ctx.image_transform(eval_transform(backbone.eval_transform, cfg["preprocess"]))
        init_rows = None
        if init == "text":
            templates = templates_by_name(cfg["text"]["templates"])
            init_rows = text_head_weights(text_classifier(backbone, data.class_names, templates, ctx), visual,
                                          head_cfg["space"]).cpu()
        # class_mean: the rows are set when training starts (_train), not for a finished stage.
        with seeded(ctx.seed, "lift", "head"):
            head = lift_head(head_cfg, tower.out_dim, data.num_classes, init_rows)
        self.model = LiftModel(tower, head).to(ctx.device)
        self.head_init = init
        head_parameters = sum(p.numel() for p in head.parameters())
        ctx.outputs.details["lift"] = {
            "peft": peft["type"], "bottleneck": tower.bottleneck, "tuned_blocks": tower.tuned_blocks,
            "trained_parameters": {"peft": tower.trained_parameters, "head": head_parameters,
                                   "total": tower.trained_parameters + head_parameters},
            "head_init": init, "augment": self._augment_kind(),
            "tte": cfg["tte"]["crops"] if cfg["tte"]["enabled"] else "off"}
        if tower.aft_ratio is not None:
            ctx.outputs.details["lift"]["aft_ratio"] = tower.aft_ratio
        ctx.log(f"{cfg['method']}: {peft['type']}, {tower.trained_parameters:,} PEFT + {head_parameters:,} head "
                f"parameters train; head from {init}")
        with ctx.timer("train"):
            TRAINING.reuse_or_train(ctx, backbone.label, training_identity(cfg, backbone, ctx.precision),
                                    load=self._load,
                                    train=lambda work_dir: self._train(data, ctx, work_dir))

    def _augment_kind(self) -> str:
        augment = self.cfg["train"]["augment"]
        if not augment["enabled"]:
            return "off"
        return f"minimalist ({augment['schedule']})" if augment["kind"] == "minimalist" else augment["kind"]

    def _class_means(self, tower: PeftViT, data, ctx) -> torch.Tensor:
        """The class means of the training features, through the codes' plain transform (shorter
        side to the input size, centre crop), of every image or at most head.class_mean_images a
        class drawn from (seed, purpose), through the frozen tower or its modules at their init."""
        head_cfg = self.cfg["head"]
        train = data.split("train")
        picked = class_mean_images(train.labels, data.num_classes, head_cfg["class_mean_images"],
                                   generator(ctx.seed, "lift", "class_mean"))
        subset = train if len(picked) == len(train) else split_subset(train, picked)
        transform = ctx.image_transform(plain_transform(self.backbone.eval_transform, self.cfg["preprocess"]))
        modules = bool(head_cfg["class_mean_modules"])
        tower.eval()  # the trainer puts it back in train mode
        features = encode_split(subset, ctx, int(self.cfg["eval_batch_size"]),
                                lambda images: tower(images, modules=modules), transform=transform,
                                desc="lift class means")
        return class_means(features, subset.labels, data.num_classes)

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
        if self.head_init == "class_mean":
            with torch.no_grad():
                self.model.head.weight.copy_(self._class_means(self.model.tower, data, ctx))
        sampler = build_sampler(train_cfg["sampler"], train.labels, seed=ctx.seed)
        batch_size = int(train_cfg["batch_size"])
        batches = epoch_batches(train, self.transform, train_cfg["augment"], batch_size, sampler, seed=ctx.seed,
                                num_workers=ctx.num_workers, pin_memory=ctx.device.type == "cuda", device=ctx.device,
                                epochs=int(train_cfg["epochs"]))
        steps = -(-len(sampler) // batch_size)  # the code's loader keeps the last partial batch
        loss, class_counts = build_loss(cfg["loss"]), data.class_counts
        # --resume continues only on the same frozen weights (the head starts from their text features).
        identity = {"visual": self.backbone.visual_fingerprint()}
        if self.backbone.is_clip:
            identity["text"] = self.backbone.text_fingerprint()
        trainer = ctx.trainer(train_cfg, name="lift", work_dir=work_dir, identity=identity)
        trainer.fit(self.model, batches, steps, loss_fn=lambda logits, targets: loss(logits, targets, class_counts))
        return {"format": CHECKPOINT_FORMAT, "backbone": self.backbone.label,
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
                                  desc=f"{self.cfg['method']} {split.name}")
        return logits.numpy()
