"""Zero-shot CLIP: classify by cosine similarity to prompt-ensemble text embeddings."""
import numpy as np
import torch

from ltbench.engine.features import image_features, text_classifier
from ltbench.core.errors import UserError
from ltbench.engine.method import Method
from ltbench.models.factory import create_backbone
from ltbench.data.prompts import templates_by_name
from ltbench.core.registry import METHODS


def create_clip_backbone(cfg, ctx):
    """The run's CLIP model; a vision-only backbone has no text encoder to make a classifier from."""
    encoder = create_backbone(cfg["backbone"]["clip"], ctx.device)
    if not encoder.is_clip:
        raise UserError(f"method '{cfg['method']}' needs a CLIP backbone with a text encoder, "
                        f"got '{cfg['backbone']['clip']}'")
    return encoder


@METHODS.register_module(name="zeroshot_clip")
class ZeroShotCLIP(Method):
    """Zero-shot CLIP: logits = scale * f . t_c with t_c the prompt-ensemble text embedding of class c."""

    def fit(self, data, ctx):
        self.clip = create_clip_backbone(self.cfg, ctx)
        templates = templates_by_name(self.cfg["text"]["templates"])
        self.classifier = text_classifier(self.clip, data.class_names, templates, ctx)

    def predict(self, split, ctx) -> np.ndarray:
        features = image_features(self.clip, split, ctx, batch_size=self.cfg["eval_batch_size"])
        logits = torch.from_numpy(np.array(features)) @ self.classifier.t()  # copy: cache hits are read-only memmaps
        return (float(self.cfg["text"]["logit_scale"]) * logits).numpy()
