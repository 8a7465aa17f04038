"""Fine-tuning a CLIP model on class prompts: the forward pass (which parameters train: models/trainable.py).

The forward pass scores a batch of images against a set of prompt texts encoded in the same
step (with gradients through both encoders). Which texts, and what the scores are compared
against, is the objective's business:

- ``contrastive`` (BALLAD paper): one text per image, the prompt of its class; the caller
  passes the distinct prompts once and an index that spreads them over the batch, so repeated
  classes are encoded once (same numbers and gradients as encoding every copy);
- ``class_ce`` (BALLAD public code): every class's prompt, scored as a C-way classifier.

The text tower runs only up to the step's longest prompt where that is exact (causal towers
pooling the end-of-text token, models/text_encoding.py): same features and gradients.

Under torchrun a ``global_pairs`` tuner (the contrastive objective) gathers the image features
and each image's text feature from every process, so the logits are those of the global
batch, [B, B], the same in every process (see distributed.gather_for_loss for the gradients).
"""

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.core import distributed
from ltbench.core.errors import unknown_name
from ltbench.models.heads import no_autocast
from ltbench.models.text_encoding import encode_text_tokens, text_lengths
from ltbench.models.trainable import freeze_batchnorm_statistics

BATCHNORM_MODES = ("frozen", "train")


class ClipFineTuner(nn.Module):
    """forward((images, prompt_rows, text_index[, text_length])) -> scale * cos(image, text)
    logits [B, len(text_index)] ([global B, global B] for global_pairs under torchrun).

    prompt_tokens [P, L] holds every (class, template) prompt, tokenised once; prompt_rows picks
    the prompts this step encodes and text_index maps each scored text to one of them.
    text_length: the longest chosen prompt's need (``prompt_lengths[prompt_rows].max()``),
    which the batches compute on the host; without it the tuner finds it (a device sync).
    """

    def __init__(self, clip_model: nn.Module, prompt_tokens: torch.Tensor, logit_scale=None,
                 batchnorm: str = "frozen", global_pairs: bool = False):
        super().__init__()
        if batchnorm not in BATCHNORM_MODES:
            raise unknown_name("phase_a.batchnorm", batchnorm, BATCHNORM_MODES)
        self.model = clip_model
        self.register_buffer("prompt_tokens", prompt_tokens, persistent=False)
        # Host-side: a step's cut is known without reading anything back from the device.
        self.prompt_lengths = text_lengths(clip_model, prompt_tokens.cpu())
        self.global_pairs = bool(global_pairs)
        # None: CLIP's own learned temperature, as the model has it (not trained further).
        self.fixed_scale = None if logit_scale is None else float(logit_scale)
        self.batchnorm = batchnorm

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.batchnorm == "frozen":
            # Running statistics stay those of the pretrained model (what the public code ran,
            # since it never called train()); affine parameters still train.
            freeze_batchnorm_statistics(self)
        return self

    def logit_scale(self) -> torch.Tensor:
        if self.fixed_scale is not None:
            # A fill on the device: torch.tensor(value, device=...) would copy from the host and
            # wait for the GPU at every step.
            return torch.full((), self.fixed_scale, device=self.prompt_tokens.device)
        return self.model.logit_scale.detach().exp()

    def forward(self, inputs):
        images, prompt_rows, text_index, *rest = inputs
        length = int(rest[0]) if rest else int(self.prompt_lengths[prompt_rows.cpu().numpy()].max())
        image_features = F.normalize(self.model.encode_image(images).float(), dim=-1)
        text_features = encode_text_tokens(self.model, self.prompt_tokens[prompt_rows], length)
        texts = F.normalize(text_features.float(), dim=-1)[text_index]
        if self.global_pairs:
            image_features, texts = distributed.gather_for_loss(image_features), distributed.gather_for_loss(texts)
        with no_autocast():  # the logits in float32, as every head's (models/heads.py)
            return self.logit_scale().float() * image_features @ texts.t()
