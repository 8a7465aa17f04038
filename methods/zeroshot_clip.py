"""Zero-shot CLIP: classify by cosine similarity to prompt-ensemble text embeddings."""
import numpy as np

from ltbench.api import METHODS, Method, create_clip_backbone, image_features, templates_by_name, text_classifier


@METHODS.register_module(name="zeroshot_clip")
class ZeroShotCLIP(Method):
    """Zero-shot CLIP: logits = scale * f . t_c with t_c the prompt-ensemble text embedding of class c."""

    def fit(self, data, ctx):
        self.clip = create_clip_backbone(self.cfg["backbone"]["clip"], ctx.device, self.cfg["method"])
        templates = templates_by_name(self.cfg["text"]["templates"])
        self.classifier = text_classifier(self.clip, data.class_names, templates, ctx)

    def predict(self, split, ctx) -> np.ndarray:
        features = image_features(self.clip, split, ctx, batch_size=self.cfg["eval_batch_size"], device=ctx.device)
        logits = features @ self.classifier.t()  # on ctx.device; a new tensor, so scaling in place is safe
        return logits.mul_(float(self.cfg["text"]["logit_scale"])).cpu().numpy()  # in place: one [N, C] array, not two
