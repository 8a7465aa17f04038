"""Image pipelines of a method's own (a paper's eval resize, test-time crops) and what a backbone
gives per image beyond its features: the image encoder's last-layer tokens, cached. Used by LIFT
and the decoder family."""
from ltbench.data.crops import CROP_SETS, CropSpec
from ltbench.data.pil_resize import INTERPOLATIONS
from ltbench.data.transforms import TransformSpec
from ltbench.engine.features import image_tokens

__all__ = ["TransformSpec", "INTERPOLATIONS", "CropSpec", "CROP_SETS", "image_tokens"]
