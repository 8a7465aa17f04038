"""Fine-tuning CLIP on the long-tailed train set: BALLAD's phase A (which TACKLE's teacher reuses),
the augmented image batches of a CLIP backbone, and the image tower's trainable scopes. Used by
BALLAD, TACKLE, clip_finetune and prompt tuning's augmented path."""
from ltbench.engine.finetune import clip_image_stream, clip_train_batches, fine_tune_clip
from ltbench.models.trainable import VISUAL_SCOPES, freeze_batchnorm_statistics

__all__ = ["fine_tune_clip", "clip_train_batches", "clip_image_stream", "VISUAL_SCOPES", "freeze_batchnorm_statistics"]
