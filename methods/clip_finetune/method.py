"""clip_finetune: CLIP's image encoder and a classification head trained together on the LT train set."""
import numpy as np

from ltbench.api import (
    EpochProgress,
    Method,
    build_head,
    build_loss,
    build_sampler_from_spec,
    clip_image_stream,
    create_clip_backbone,
    encode_split,
    seeded,
    set_visual_trainable,
    templates_by_name,
    text_classifier,
    visual_blocks,
)
from ltbench.methods.clip_finetune.model import ImageClassifier
from ltbench.methods.clip_finetune.options import OPTIONS
from ltbench.methods.clip_finetune.settings import check_blocks, finetune_identity


class ClipFineTune(Method):
    """Full CLIP fine-tuning (image encoder + text-initialised head); the loss comes from the config (CE by default)."""

    options = OPTIONS

    def fit(self, data, ctx):
        cfg = self.cfg
        trainable = cfg["trainable"]
        self.clip = create_clip_backbone(cfg["backbone"]["clip"], ctx.device, cfg["method"])
        visual = self.clip.model.visual
        if trainable["scope"] == "last_blocks" and trainable["last_blocks"] > 0:
            check_blocks(trainable, len(visual_blocks(visual)), self.clip.label)
        self.classifier = ImageClassifier(visual, self._head(data, ctx), trainable["batchnorm"]).to(ctx.device)
        # The text tower is not part of the classifier: it neither trains nor goes into checkpoints.
        self.clip.model.requires_grad_(False)
        opened = set_visual_trainable(visual, trainable["scope"], trainable["last_blocks"])
        self.classifier.head.requires_grad_(trainable["head"])
        total = sum(p.numel() for p in self.classifier.parameters())
        trains = sum(p.numel() for p in self.classifier.parameters() if p.requires_grad)
        ctx.log(f"clip_finetune: scope {trainable['scope']}, {opened:,} encoder and {trains - opened:,} head "
                f"parameters of {total:,} train")
        with ctx.timer("finetune"):
            self._train(data, ctx)
        self.classifier.eval().requires_grad_(False)

    def _head(self, data, ctx):
        options = self.cfg["head"]
        text_init = None
        if options["init"] == "text":
            text_init = text_classifier(self.clip, data.class_names, templates_by_name(self.cfg["text"]["templates"]),
                                        ctx)
        # A random head's draw comes from (seed, purpose), not from what ran before it.
        with seeded(ctx.seed, "clip_finetune", "head"):
            return build_head(options["type"], self.clip.embed_dim, data.num_classes, options["scale"], text_init,
                              learn_scale=options["learn_scale"])

    def _train(self, data, ctx):
        cfg, train_cfg = self.cfg, self.cfg["train"]
        train = data.split("train")
        sampler = build_sampler_from_spec(train_cfg["sampler"], train.labels, seed=ctx.seed)
        images, steps = clip_image_stream(train, self.clip, train_cfg, sampler, ctx, "train")
        batches = EpochProgress(images, train_cfg["epochs"])
        loss, class_counts = build_loss(cfg["loss"]), data.class_counts
        trainer = ctx.trainer(train_cfg, name="finetune", identity=finetune_identity(cfg))
        trainer.fit(self.classifier, batches, steps,
                    loss_fn=lambda logits, targets: loss(logits, targets, class_counts, progress=batches.value),
                    lr_scales=self.classifier.lr_scales(float(train_cfg["encoder_lr_scale"])))

    def predict(self, split, ctx) -> np.ndarray:
        self.classifier.eval()
        transform = ctx.image_transform(self.clip.eval_transform)
        return encode_split(split, ctx, int(self.cfg["eval_batch_size"]), self.classifier, transform=transform,
                            desc=f"predict {split.name}").numpy()
