"""clip_finetune: CLIP's image encoder and a classification head trained together on the LT train set."""
import numpy as np

from ltbench.api import (
    Method,
    TrainingProgress,
    build_loss,
    build_sampler,
    create_clip_backbone,
    seeded,
    templates_by_name,
    text_classifier,
)
from ltbench.api.finetune import clip_image_stream
from ltbench.api.heads import build_head
from ltbench.api.images import encode_split
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
        if trainable["scope"] == "last_blocks" and trainable["last_blocks"] > 0:
            check_blocks(trainable, len(self.clip.visual_blocks()), self.clip.label)
        self.classifier = ImageClassifier(self.clip.visual_tower(), self._head(data, ctx),
                                          trainable["batchnorm"]).to(ctx.device)
        # The text tower is not part of the classifier: it neither trains nor goes into checkpoints.
        self.clip.freeze()
        opened = self.clip.trainable(trainable["scope"], trainable["last_blocks"])
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
        sampler = build_sampler(train_cfg["sampler"], train.labels, seed=ctx.seed)
        batches, steps = clip_image_stream(train, self.clip, train_cfg, sampler, ctx, "train")
        loss, class_counts, progress = build_loss(cfg["loss"]), data.class_counts, TrainingProgress()
        trainer = ctx.trainer(train_cfg, name="finetune", identity=finetune_identity(cfg))
        trainer.fit(self.classifier, batches, steps,
                    loss_fn=lambda logits, targets: loss(logits, targets, class_counts, progress=progress.value),
                    hooks=[progress], lr_scales=self.classifier.lr_scales(float(train_cfg["encoder_lr_scale"])))

    def predict(self, split, ctx) -> np.ndarray:
        self.classifier.eval()
        transform = ctx.image_transform(self.clip.eval_transform)
        return encode_split(split, ctx, int(self.cfg["eval_batch_size"]), self.classifier, transform=transform,
                            desc=f"predict {split.name}").numpy()
