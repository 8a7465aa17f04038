"""CLIP's image encoder with a classification head: the network clip_finetune trains."""
import torch.nn.functional as F
from torch import nn

from ltbench.api.finetune import freeze_batchnorm_statistics


class ImageClassifier(nn.Module):
    """logits = head(normalise(visual(images))).

    The features are L2-normalised, as zero-shot CLIP compares them, so a head initialised from
    the text classifier starts as the zero-shot model. batchnorm 'frozen' keeps a ResNet tower's
    running statistics in train mode (its affine parameters still train).
    """

    def __init__(self, visual: nn.Module, head: nn.Module, batchnorm: str = "frozen"):
        super().__init__()
        self.visual, self.head, self.batchnorm = visual, head, batchnorm

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.batchnorm == "frozen":
            freeze_batchnorm_statistics(self.visual)
        return self

    def forward(self, images):
        return self.head(F.normalize(self.visual(images).float(), dim=-1))

    def lr_scales(self, encoder_scale: float) -> list:
        """(lr factor, trainable parameters) of the head and of the encoder, for the trainer (the
        head first: the progress log shows the first group's lr, which is then train.lr)."""
        groups = [(1.0, [p for p in self.head.parameters() if p.requires_grad]),
                  (encoder_scale, [p for p in self.visual.parameters() if p.requires_grad])]
        return [(factor, params) for factor, params in groups if params]
