"""Image pipelines of a method's own (a paper's eval resize, test-time crops, batches of
augmented training images), a split's images through a module of the method's, and what a
backbone gives per image beyond its features: the image encoder's last-layer tokens, cached. Used
by LIFT, the decoder family, clip_finetune and TACKLE."""
from ltbench.data.crops import CROP_SETS, CropSpec
from ltbench.data.loading import epoch_batches
from ltbench.data.pil_resize import INTERPOLATIONS
from ltbench.data.transforms import TransformSpec
from ltbench.engine.features import encode_split, image_tokens

__all__ = ["TransformSpec", "INTERPOLATIONS", "CropSpec", "CROP_SETS", "epoch_batches", "encode_split", "image_tokens"]
