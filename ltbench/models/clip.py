"""The one wrapper around open_clip: model creation, weights, transforms, tokenizer, encoders."""
import warnings
from functools import lru_cache
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.core import distributed
from ltbench.core.errors import UserError, first_line_of, unknown_name
from ltbench.data.transforms import TransformSpec
from ltbench.models.backbones import BackboneSpec, ImageEncoder, quiet_hub_retries
from ltbench.models.fingerprint import MemoizedFingerprint
from ltbench.models.text_encoding import (
    PromptChunks,
    causal_text_tower,
    encode_prompt_embeddings,
    encode_text_tokens,
    text_lengths,
    token_embeddings,
)
from ltbench.models.weights import weights_available

CONFIG_DIR = Path(__file__).parent / "configs"


@lru_cache(maxsize=None)
def _open_clip():
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)  # registers ltbench-tiny
    return open_clip


def list_open_clip_backbones():
    """[(MODEL:TAG, description)] for every open_clip model with pretrained weights."""
    return [(f"{model}:{tag}", f"open_clip {model}, pretrained '{tag}'")
            for model, tag in _open_clip().list_pretrained()]


def _is_visual(name: str) -> bool:
    return name.startswith("visual.")


def _is_text(name: str) -> bool:
    return not name.startswith("visual.") and not name.startswith("logit_")


class ClipModel(ImageEncoder):
    """An open_clip CLIP model with L2-normalised image / text encoders and its eval transform."""

    is_clip = True

    def __init__(self, model: torch.nn.Module, tokenizer, spec: BackboneSpec, quick_gelu: bool = False):
        super().__init__(model, spec)
        self.tokenizer = tokenizer
        self.quick_gelu = bool(quick_gelu)
        # The same weights with QuickGELU compute other features: caches must not mix the two.
        # GELU models keep the plain weights hash, so caches written before the activation was
        # resolved from the tag stay valid for them.
        salt = "quick_gelu" if self.quick_gelu else ""
        self.visual_fingerprint = MemoizedFingerprint(model, _is_visual, salt)
        self.text_fingerprint = MemoizedFingerprint(model, _is_text, salt)
        self._prompt_chunks = {}  # encode_prompt_embeddings' layouts, by (lengths, chunk, device, rank, world)

    @property
    def activation(self) -> str:
        """'quick_gelu' or 'gelu': what open_clip's transformer towers were built with."""
        return activation_name(self.quick_gelu)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") \
            else int(self.model.visual.output_dim)

    @property
    def eval_transform(self) -> TransformSpec:
        cfg = self.model.visual.preprocess_cfg
        size = cfg["size"]
        size = size[0] if isinstance(size, (tuple, list)) else size
        return TransformSpec(size=int(size), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                             interpolation=cfg.get("interpolation", "bicubic"),
                             resize_mode=cfg.get("resize_mode", "shortest"))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(images).float(), dim=-1)

    def visual_tower(self) -> torch.nn.Module:
        return self.model.visual

    # ---- tokens of the last image-encoder layer (Imbalance-VLM's decoder reads these) ----

    def _token_kind(self) -> str:
        """'vit' or 'resnet': the image encoders whose tokens ltbench knows how to take."""
        open_clip = _open_clip()
        visual = self.model.visual
        if isinstance(visual, open_clip.transformer.VisionTransformer):
            return "vit"
        if isinstance(visual, open_clip.modified_resnet.ModifiedResNet):
            return "resnet"
        raise UserError(f"backbone '{self.label}': tokens are only available for open_clip ViT and "
                        f"ModifiedResNet (RN50 etc.) image encoders, not {type(visual).__name__}")

    @property
    def token_width(self) -> int:
        """W of encode_tokens: the ViT transformer width, or the ResNet's layer4 channels."""
        visual = self.model.visual
        if self._token_kind() == "vit":
            return int(visual.transformer.width)
        return int(visual.layer4[-1].conv3.out_channels)

    def token_count(self, image_size: int) -> int:
        """T of encode_tokens for square images of `image_size` pixels (1 CLS + the grid)."""
        visual = self.model.visual
        size = int(image_size)
        if self._token_kind() == "vit":
            if (size, size) != tuple(visual.image_size):
                raise UserError(f"backbone '{self.label}': its ViT takes {visual.image_size[0]} px "
                                f"images (fixed positional embedding), not {size} px")
            grid = (size // visual.patch_size[0]) * (size // visual.patch_size[1])
            return grid + 1
        side = -(-size // 2) // 2  # stem: stride-2 conv (padding 1), then a 2x2 average pool
        for _ in range(3):  # layer2..4 each halve the map with a 2x2 average pool
            side //= 2
        if side < 1:
            raise UserError(f"backbone '{self.label}': {size} px images are too small for its ResNet")
        return side * side + 1

    @property
    def num_tokens(self) -> int:
        """T of encode_tokens at the model's own input size (ViT-B/16 at 224 px: 197)."""
        size = self.model.visual.image_size
        return self.token_count(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def token_shape(self) -> Tuple[int, int]:
        return self.num_tokens, self.token_width

    def encode_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, T, W] float32: every token of the last layer of the image encoder.

        ViT: the CLS token and the patch tokens as ``visual.transformer`` outputs them, i.e.
        before ``ln_post``, pooling and ``proj`` (the model's own ``ln_post`` + pooling + ``proj``
        applied to them give ``encode_image``). Patch dropout acts only in training mode, as in
        open_clip.

        ModifiedResNet (RN50, RN101, ...): the layer4 feature map [B, C, H, W] flattened to H*W
        tokens of width C, with a CLS token prepended that is the spatial mean of the map: the
        first token CLIP's attention pool builds (before its positional embedding is added), so
        that the decoder's token 0 plays the role of the ViT CLS token.

        Runs under the caller's no_grad / autocast; the result is cast to float32.
        """
        kind = self._token_kind()
        visual = self.model.visual
        if kind == "resnet":
            x = visual.stem(images)
            x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
            x = x.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, H*W, C]
            return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1).float()
        # VisionTransformer.forward up to the transformer output (open_clip >= 2.24).
        x = visual.conv1(images)  # [B, W, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, W]
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        x = visual.ln_pre(x)
        transformer = visual.transformer
        if hasattr(transformer, "batch_first"):
            x = transformer(x)  # takes and returns [B, T, W], transposing inside if seq-first
        else:  # older open_clip: a sequence-first stack, the caller transposes
            x = transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return x.float()

    def tokenize(self, texts: List[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def text_lengths(self, tokens: torch.Tensor):
        """[B] the positions of `tokens` the text tower needs per row (models/text_encoding.py):
        1 + the end-of-text position for causal towers, the full context otherwise."""
        return text_lengths(self.model, tokens)

    def encode_text_tokens(self, tokens: torch.Tensor, length=None) -> torch.Tensor:
        """[B, D] float32 L2-normalised features of tokenised texts, the tower cut to the batch's
        longest text where that is exact (length: that longest need, if known)."""
        return F.normalize(encode_text_tokens(self.model, tokens.to(self.device), length).float(), dim=-1)

    # ---- prompt learning (CoOp): the text tower fed with embeddings, some of them learnt ----

    @property
    def takes_prompt_embeddings(self) -> bool:
        """Whether the text tower can run from input embeddings (open_clip causal towers)."""
        return causal_text_tower(self.model) is not None

    @property
    def text_width(self) -> int:
        """The width of the text tower's input embeddings (CoOp's context vectors)."""
        return int(causal_text_tower(self.model).owner.token_embedding.embedding_dim)

    @property
    def context_length(self) -> int:
        return int(causal_text_tower(self.model).context_length)

    @property
    def learnt_logit_scale(self) -> float:
        """exp(logit_scale): CLIP's own temperature (about 100 for the OpenAI weights)."""
        return float(self.model.logit_scale.detach().exp())

    def word_ids(self, text: str) -> List[int]:
        """The BPE ids of `text` without start / end tokens (open_clip's SimpleTokenizer)."""
        if not hasattr(self.tokenizer, "encode"):
            raise UserError(f"backbone '{self.label}': prompt learning needs open_clip's BPE tokenizer, "
                            f"not {type(self.tokenizer).__name__}")
        return list(self.tokenizer.encode(text))

    @property
    def special_ids(self) -> Tuple[int, int]:
        """(start-of-text, end-of-text) token ids."""
        return int(self.tokenizer.sot_token_id), int(self.tokenizer.eot_token_id)

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L, text_width] the text tower's input embeddings of token ids."""
        return token_embeddings(self.model, tokens)

    def encode_prompt_embeddings(self, embed, tokens: torch.Tensor, chunk_size: int,
                                 checkpoint: bool = True, lengths=None, shard: bool = False) -> torch.Tensor:
        """[C, D] float32 L2-normalised text features of prompts given as embeddings, encoded in
        length-sorted chunks under activation checkpointing (models/text_encoding.py).

        With `lengths` (the prompts' host-side lengths) the chunk layout is kept from call to
        call: a step then copies no index to the device. shard: under torchrun each process
        encodes a share of the classes and the shares are gathered with their gradients (the
        loss must then be the global batch's; see text_encoding.encode_prompt_embeddings)."""
        tokens = tokens.to(self.device)
        chunks = None
        if lengths is not None:
            world, rank = (distributed.get_world_size(), distributed.get_rank()) if shard else (1, 0)
            lengths = np.asarray(lengths)
            key = (lengths.tobytes(), int(chunk_size), str(tokens.device), rank, world)
            chunks = self._prompt_chunks.get(key)
            if chunks is None:
                chunks = self._prompt_chunks[key] = PromptChunks(lengths, int(chunk_size), tokens.device, rank, world)
        features = encode_prompt_embeddings(self.model, embed, tokens, chunk_size, checkpoint, lengths, chunks)
        return F.normalize(features.float(), dim=-1)

    def encode_texts(self, texts: List[str]) -> torch.Tensor:
        tokens = self.tokenize(texts)
        return self.encode_text_tokens(tokens, int(self.text_lengths(tokens).max()) if len(texts) else None)


def activation_name(quick_gelu: bool) -> str:
    return "quick_gelu" if quick_gelu else "gelu"


def resolve_quick_gelu(spec: BackboneSpec) -> bool:
    """Whether to build ``spec`` with QuickGELU: as its weights were trained.

    A pretrained tag's config names the activation (``quick_gelu: True`` for every OpenAI tag and
    some LAION / MetaCLIP / DFN ones); since open_clip 2.29 the model configs alone build nn.GELU
    for them. A checkpoint or random init carries no tag: the model config decides, so OpenAI
    checkpoints need the ``-quickgelu`` names (``RN50-quickgelu:/path.pt``).
    """
    open_clip = _open_clip()
    model_cfg = open_clip.get_model_config(spec.model) or {}
    tag_cfg = {}
    if spec.weights is not None and not spec.is_checkpoint:
        tag_cfg = open_clip.get_pretrained_cfg(spec.model, spec.weights) or {}
    return bool(model_cfg.get("quick_gelu", False) or tag_cfg.get("quick_gelu", False))


def _warn_if_openai_checkpoint_without_quick_gelu(spec: BackboneSpec, quick_gelu: bool):
    open_clip = _open_clip()
    if spec.is_checkpoint and not quick_gelu and "openai" in open_clip.list_pretrained_tags_by_model(spec.model):
        warnings.warn(f"backbone '{spec.text}': {spec.model} is built with nn.GELU; OpenAI CLIP weights and "
                      f"their fine-tunes were trained with QuickGELU: load them as "
                      f"'{spec.model}-quickgelu:{spec.weights}'", UserWarning, stacklevel=3)


def check_names(spec: BackboneSpec):
    """A one-line UserError for a model name or pretrained tag open_clip does not know."""
    open_clip = _open_clip()
    models = open_clip.list_models()
    if spec.model not in models:
        raise unknown_name("backbone model", spec.model, models, listing="backbones")
    if spec.weights is not None and not spec.is_checkpoint:
        tags = open_clip.list_pretrained_tags_by_model(spec.model)
        if spec.weights not in tags:
            hint = f"known tags: {', '.join(tags)}" if tags else "it has no pretrained tags"
            raise UserError(f"backbone '{spec.text}': unknown pretrained tag '{spec.weights}' for "
                            f"{spec.model} ({hint}); or use {spec.model}:none or a checkpoint path")


def create_clip(spec: BackboneSpec, device="cpu") -> ClipModel:
    """Build an open_clip model from a parsed backbone name; every failure is a one-line UserError."""
    open_clip = _open_clip()
    check_names(spec)
    weights = spec.weights
    quick_gelu = resolve_quick_gelu(spec)
    _warn_if_openai_checkpoint_without_quick_gelu(spec, quick_gelu)
    try:
        # MODEL:none and tiny ask for random init: open_clip's line saying so is no news; nor is
        # its line on a failed download, which the UserError below says again.
        expected = ("No pretrained weights loaded",) if weights is None else ("Failed to download weights",)
        # Cached weights load without a request; missing ones fail here at once when offline.
        with weights_available(spec), quiet_hub_retries(expected):
            model, _, _ = open_clip.create_model_and_transforms(spec.model, pretrained=weights, device=device,
                                                                force_quick_gelu=quick_gelu)
    except UserError:
        raise
    except Exception as error:  # network, hub cache, or a checkpoint of another architecture
        reason = first_line_of(error)
        if spec.is_checkpoint:
            raise UserError(f"backbone '{spec.text}': could not load checkpoint {weights} into "
                            f"{spec.model}: {reason}") from None
        raise UserError(
            f"backbone '{spec.text}': could not fetch pretrained weights '{weights}' ({reason}); "
            f"connect to the internet or fill the cache (`ltbench weights fetch {spec.text}` on a machine "
            f"with internet), try --backbone tiny for a first offline run, or use '{spec.model}:none' for "
            f"random init or '{spec.model}:/path/to/checkpoint.pt' for local weights"
        ) from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec.model)
    return ClipModel(model, tokenizer, spec, quick_gelu)
