"""The backbone interface methods program against: what ``create_backbone`` and
``create_clip_backbone`` return, typed.

``Backbone`` is any image encoder (an open_clip CLIP, a timm model); ``ClipBackbone`` adds CLIP's
text side, the image encoder's last-layer tokens and prompt learning (CoOp). A method reaches a
model's weights only through these operations (``freeze``, ``visual_tower``, ``trainable``,
the encoders, the fingerprints), never through the wrapped ``torch.nn.Module``: the wrapper can
change (another open_clip version, another library) without breaking a plug-in, and the
operations that change weights keep the fingerprints that key the feature cache right.

Both are ``runtime_checkable`` Protocols: ``isinstance(backbone, ClipBackbone)`` checks that every
member is there. They come from typing_extensions, whose isinstance looks members up without
running them (Python 3.12's rule): typing's own Protocol on 3.9 to 3.11 evaluates every property,
so a check could build a text tower's layout or raise.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
from typing_extensions import Protocol, runtime_checkable

from ltbench.data.transforms import TransformSpec


@runtime_checkable
class Backbone(Protocol):
    """Any backbone: ``ClipModel`` (open_clip, ``tiny``) and ``TimmEncoder`` (``timm:NAME``).

    Built in eval mode on the device asked for, its weights those of the ``--backbone`` name.
    ``encode_images`` returns L2-normalised float32 features [B, embed_dim] on the backbone's
    device, under the caller's no_grad / autocast.
    """

    is_clip: bool  # whether it has a text encoder (a ClipBackbone)

    @property
    def label(self) -> str:
        """The ``--backbone`` name as given: the record's backbone label."""

    @property
    def model_name(self) -> str:
        """The architecture's name (open_clip ``ViT-B-16``, timm ``resnet50``): what a saved stage's
        checkpoint records, so that it is never loaded into another architecture."""

    @property
    def device(self) -> torch.device: ...

    @property
    def embed_dim(self) -> int:
        """The width of ``encode_images``' features."""

    @property
    def eval_transform(self) -> TransformSpec:
        """The backbone's own eval preprocessing (size, mean, std, interpolation)."""

    def encode_images(self, images: torch.Tensor) -> torch.Tensor: ...

    def visual_fingerprint(self) -> str:
        """A hash of the image tower's weights (memoised; recomputed after they change)."""

    def to(self, device) -> "Backbone": ...

    def freeze(self) -> "Backbone":
        """Eval mode and no gradients for every weight (a frozen encoder); returns itself."""

    def visual_tower(self) -> nn.Module:
        """The image tower as a module (CLIP's ``visual``, the whole timm model), for a method that
        trains it (``trainable``) or wraps it (PEFT): its forward maps images to features."""

    def visual_blocks(self) -> List[nn.Module]:
        """The image tower's residual blocks in depth order (open_clip ViTs and ModifiedResNets;
        another tower is a one-line UserError)."""

    def trainable(self, scope: str, last_blocks: int = 0, key: str = "trainable") -> int:
        """Which image-tower weights train (``VISUAL_SCOPES``: all, last_blocks, norm, bias,
        norm_bias, none; ``key`` names the setting in errors); returns how many train."""


@runtime_checkable
class ClipBackbone(Backbone, Protocol):
    """A CLIP model (``create_clip_backbone``): a Backbone with a text encoder, the image
    encoder's last-layer tokens, and a text tower that runs from embeddings (prompt learning)."""

    # --- text ---
    def text_fingerprint(self) -> str:
        """A hash of the text tower's weights: what cached text classifiers are keyed by."""

    def tokenize(self, texts: List[str]) -> torch.Tensor: ...

    def text_lengths(self, tokens: torch.Tensor): ...

    def encode_text_tokens(self, tokens: torch.Tensor, length: Optional[int] = None) -> torch.Tensor: ...

    def encode_texts(self, texts: List[str]) -> torch.Tensor:
        """[len(texts), embed_dim] L2-normalised float32 text features."""

    # --- tokens of the image encoder's last layer (Imbalance-VLM's decoder) ---
    @property
    def token_width(self) -> int: ...

    def token_count(self, image_size: int) -> int: ...

    def encode_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, T, token_width] float32: every token of the image encoder's last layer."""

    # --- prompt learning (CoOp): the text tower fed with embeddings ---
    @property
    def takes_prompt_embeddings(self) -> bool: ...

    @property
    def text_width(self) -> int: ...

    @property
    def context_length(self) -> int: ...

    @property
    def learnt_logit_scale(self) -> float: ...

    @property
    def special_ids(self) -> Tuple[int, int]: ...

    def word_ids(self, text: str) -> List[int]: ...

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def encode_prompt_embeddings(self, embed, tokens: torch.Tensor, chunk_size: int, checkpoint: bool = True,
                                 lengths: Optional[Sequence[int]] = None, shard: bool = False) -> torch.Tensor: ...
