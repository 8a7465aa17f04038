"""Image pipelines of a method's own (a paper's eval resize, test-time crops, batches of
augmented training images and the augmentation kinds beyond the shared section's, such as LIFT+'s
minimalist crops), a split's images (or some of them) through a module of the method's, and what a
backbone gives per image beyond its features: the image encoder's last-layer tokens, cached. Used
by LIFT, the decoder family, clip_finetune and TACKLE."""
from ltbench.data.base import split_subset
from ltbench.data.crops import CROP_SETS, CropSpec
from ltbench.data.loading import AUGMENT_KINDS, epoch_batches, training_augmentation
from ltbench.data.minimalist_crop import MDA_FUNCTIONS
from ltbench.data.pil_resize import INTERPOLATIONS
from ltbench.data.transforms import TransformSpec
from ltbench.engine.features import encode_split, image_tokens

__all__ = ["TransformSpec", "INTERPOLATIONS", "CropSpec", "CROP_SETS", "epoch_batches", "AUGMENT_KINDS", "MDA_FUNCTIONS",
           "training_augmentation", "encode_split", "split_subset", "image_tokens"]
