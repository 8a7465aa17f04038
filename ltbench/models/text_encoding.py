"""CLIP text towers run only up to the token they pool: same features, a fraction of the work.

open_clip's CLIP text transformer is causal (each position attends to itself and the positions
before it) and pools the features of the end-of-text token (``argmax``: the highest token id,
or ``eos``: the first end-of-text id). The pooled feature therefore depends only on the tokens
up to the end-of-text position, and running the tower on the first L positions of a batch,
L = 1 + the last end-of-text position in the batch, gives the same features (up to float
rounding of differently shaped matrix products) as the full 77-token context: the positional
embedding and causal mask are sliced to L, as open_clip's own TextTransformer slices them.

Prompts are short (ImageNet's 80 templates: 8.6 tokens on average, 21 at most), so this cuts
the work of a text tower by 4-9x. It applies only where it is exact:

- an ``open_clip.CLIP`` (the OpenAI / open_clip text transformer folded into the model), or an
  ``open_clip.CustomTextCLIP`` whose tower is open_clip's own ``TextTransformer`` without a
  class token, padding mask or token outputs; subclasses (CoCa, ...) and Hugging Face towers
  take the full context;
- an attention mask equal to the causal mask (``no_causal_mask`` towers take the full context);
- ``argmax`` or ``eos`` pooling (``first`` / ``last`` / ``none`` take the full context).

``encode_text_tokens`` is ``model.encode_text`` (unnormalised) with the cut; ``text_lengths``
gives the positions each row needs (the full context where the cut is not exact), so callers
can sort prompts by length into batches.

Prompt learning (CoOp) encodes all C class prompts with gradients every step: ``PromptChunks``
lays them out once (length-sorted chunks, index tensors kept on the device) and, under torchrun,
gives each process a share of the classes; the shares are gathered with the gradient-preserving
``distributed.gather_for_loss``, so more GPUs divide the text tower's work.
"""
import math
import weakref
from functools import lru_cache
from typing import Callable, Optional

import numpy as np
import torch
import torch.utils.checkpoint
from torch import nn

from ltbench.core import distributed

EXACT_POOLS = ("argmax", "eos")


@lru_cache(maxsize=None)
def _open_clip_types():
    import open_clip
    from open_clip.transformer import TextTransformer

    return open_clip.CLIP, open_clip.CustomTextCLIP, TextTransformer


class _Tower:
    """The parts of a causal text tower, read from the model at each call (a model moved to
    another device or dtype has new buffers)."""

    def __init__(self, owner: nn.Module, pool_type: str, eos_id):
        self.owner, self.pool_type, self.eos_id = owner, pool_type, eos_id

    @property
    def context_length(self) -> int:
        return int(self.owner.positional_embedding.shape[0])

    def pool_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B] the position each row pools, as open_clip's text_global_pool finds it."""
        if self.pool_type == "argmax":
            return tokens.argmax(dim=-1)
        return (tokens == self.eos_id).int().argmax(dim=-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's encode_text on [B, L] tokens, L <= the context, mask and positions sliced."""
        return self.forward_embeddings(self.owner.token_embedding(tokens), tokens)

    def forward_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """encode_text from the token embeddings [B, L, width] instead of the ids: `tokens` [B, L]
        only say where each row pools (prompt learning puts learnt vectors at some positions)."""
        from open_clip.transformer import text_global_pool

        tower = self.owner
        length = tokens.shape[1]
        cast_dtype = tower.transformer.get_cast_dtype()
        x = embeddings.to(cast_dtype)
        x = x + tower.positional_embedding[:length].to(cast_dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
        x = tower.ln_final(x)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        projection = tower.text_projection
        if projection is not None:
            x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return x


def _is_causal_mask(mask) -> bool:
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    causal = torch.full(mask.shape, float("-inf"), device=mask.device).triu_(1)
    return bool(torch.equal(mask.float(), causal))


# owner module -> (mask shape, whether it is the causal mask): the comparison reads the mask back
# from the device (a sync on a GPU), so each model's mask is checked once, not at every call (a
# CoOp step asks several times). A model moved to another device keeps its mask's values.
_CAUSAL_MASKS = weakref.WeakKeyDictionary()


def _has_causal_mask(owner: nn.Module) -> bool:
    mask = getattr(owner, "attn_mask", None)
    shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else None
    known = _CAUSAL_MASKS.get(owner)
    if known is None or known[0] != shape:
        known = _CAUSAL_MASKS[owner] = (shape, _is_causal_mask(mask))
    return known[1]


def causal_text_tower(model: nn.Module) -> Optional[_Tower]:
    """The model's text tower if cutting it at the last pooled token is exact, else None."""
    clip_type, custom_type, text_type = _open_clip_types()
    if type(model) is clip_type:
        owner, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
    elif type(model) is custom_type and type(model.text) is text_type:
        owner = model.text
        if owner.cls_emb is not None or owner.use_pad_mask or owner.output_tokens:
            return None
        pool_type, eos_id = owner.pool_type, owner.eos_id
    else:
        return None
    if pool_type not in EXACT_POOLS or (pool_type == "eos" and eos_id is None):
        return None
    if not _has_causal_mask(owner) or owner.attn_mask.shape[0] != owner.positional_embedding.shape[0]:
        return None
    return _Tower(owner, pool_type, eos_id)


def text_lengths(model: nn.Module, tokens: torch.Tensor) -> np.ndarray:
    """[B] int64: the positions each row of `tokens` needs (1 + its pooled position), or the full
    context length for every row where the tower cannot be cut."""
    tower = causal_text_tower(model)
    if tower is None:
        return np.full(len(tokens), tokens.shape[1], dtype=np.int64)
    return (tower.pool_positions(tokens) + 1).cpu().numpy().astype(np.int64)


def encode_text_tokens(model: nn.Module, tokens: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
    """``model.encode_text(tokens)`` (not normalised), running the tower on the first `length`
    positions only where that is exact. length: the longest row's need (``text_lengths``), if the
    caller knows it; found from the tokens otherwise (a device sync on a GPU)."""
    tower = causal_text_tower(model)
    if tower is None or tokens.shape[1] != tower.context_length:
        return model.encode_text(tokens)
    if length is None:
        length = int(tower.pool_positions(tokens).max()) + 1 if len(tokens) else 1
    length = max(1, min(int(length), tokens.shape[1]))
    return tower.forward(tokens[:, :length])


def length_sorted_batches(lengths: np.ndarray, batch_size: int):
    """[(rows, longest)] covering every row once: rows sorted by length (stable), in batches of
    `batch_size`, each with the length of its longest row."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [(order[start: start + batch_size], int(np.asarray(lengths)[order[start: start + batch_size]].max()))
            for start in range(0, len(order), batch_size)]


def encode_text_sorted(model: nn.Module, tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """[B, D] ``model.encode_text(tokens)`` in the rows' order, encoded in batches of rows of
    similar length, each cut to its longest row (works with gradients too)."""
    lengths = text_lengths(model, tokens)
    parts, rows = [], []
    for batch_rows, longest in length_sorted_batches(lengths, batch_size):
        index = torch.from_numpy(batch_rows).to(tokens.device)
        parts.append(encode_text_tokens(model, tokens[index], longest))
        rows.append(batch_rows)
    if not parts:
        return model.encode_text(tokens)
    order = np.concatenate(rows)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return torch.cat(parts)[torch.from_numpy(inverse).to(parts[0].device)]


def token_embeddings(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """[B, L, width] the text tower's input embeddings of `tokens` (causal towers only)."""
    tower = causal_text_tower(model)
    if tower is None:
        raise ValueError("token embeddings as text-tower inputs need an open_clip causal text tower")
    return tower.owner.token_embedding(tokens)


class PromptChunks:
    """How C prompts of known lengths are encoded, worked out once on the host: this process's
    share of the classes in length-sorted chunks of at most `chunk_size` (each with its longest
    length), and where each class's feature lands once the shares are gathered. The index
    tensors live on `device`, so a step copies nothing to it.

    Under torchrun (`world_size` processes) the classes, sorted by length, are dealt out in turn
    (process r takes positions r, r + world_size, ... of that order), so every process gets
    prompts of every length and the same count, ceil(C / world_size): the order wraps around to
    its start to fill the last positions, as ``distributed.shard_rows`` pads. A class encoded
    twice takes its first copy. With one process: every class, the chunks of
    ``length_sorted_batches``.
    """

    def __init__(self, lengths, chunk_size: int, device, rank: int = 0, world_size: int = 1):
        lengths = np.asarray(lengths, dtype=np.int64)
        count, self.rank, self.world_size = len(lengths), int(rank), int(world_size)
        order = np.argsort(lengths, kind="stable")
        share = math.ceil(count / self.world_size)
        dealt = np.resize(order, share * self.world_size).reshape(share, self.world_size)  # [position, process]
        self.rows = dealt[:, self.rank]  # this process's classes, shortest first
        self.chunks = [(_on(self.rows[start: start + chunk_size], device),
                        int(lengths[self.rows[start: start + chunk_size]].max()))
                       for start in range(0, share, chunk_size)]
        # The gathered features are the processes' shares in rank order: class dealt[j, r] at r * share + j.
        gathered = dealt.T.reshape(-1)
        first = np.full(count, -1, dtype=np.int64)
        for position in range(len(gathered) - 1, -1, -1):
            first[gathered[position]] = position
        self.order = _on(first, device)


def _on(rows: np.ndarray, device) -> torch.Tensor:
    index = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
    return index if torch.device(device).type == "cpu" else index.to(device)


def encode_prompt_embeddings(model: nn.Module, embed: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor,
                             chunk_size: int, checkpoint: bool = True, lengths=None,
                             chunks: Optional[PromptChunks] = None) -> torch.Tensor:
    """[C, D] ``encode_text`` (not normalised) of C prompts given as embeddings, with gradients
    to whatever `embed` builds them from (CoOp's learnt context).

    embed(rows) -> [len(rows), L, width]: the embeddings of those rows of `tokens` [C, L] (whose
    ids say only where each row pools). The rows run in chunks of `chunk_size`, sorted by length
    and each cut to its longest row (exact, as ``encode_text_sorted``). With `checkpoint` (and
    gradients on), a chunk keeps only its output for the backward pass and runs again there:
    the activations of one chunk, not of all C prompts, are in memory at once, so the cost of
    C = 8142 classes is one more forward pass, not 8142 prompts' activations. lengths: [C] each
    row's need (``text_lengths``), if the caller keeps them (no device sync per call).

    chunks: the layout (``PromptChunks``, which the caller keeps: then a call copies nothing to
    the device and reads nothing back). One for several processes encodes this process's share
    and gathers every share (``distributed.gather_for_loss``: the gradient reaches this
    process's context through its own classes, scaled for DDP's average, so the loss must be
    the global batch's, the same in every process). None: all classes here, laid out now.
    """
    tower = causal_text_tower(model)
    if tower is None:
        raise ValueError("prompt embeddings as text-tower inputs need an open_clip causal text tower")
    if chunks is None:
        if lengths is None:
            lengths = (tower.pool_positions(tokens) + 1).cpu().numpy()
        chunks = PromptChunks(lengths, chunk_size, tokens.device)
    parts = []
    for index, longest in chunks.chunks:

        def run(index=index, longest=longest):
            return tower.forward_embeddings(embed(index)[:, :longest], tokens[index, :longest])

        if checkpoint and torch.is_grad_enabled():
            parts.append(torch.utils.checkpoint.checkpoint(run, use_reentrant=False))
        else:
            parts.append(run())
    features = torch.cat(parts)
    if chunks.world_size > 1:
        features = distributed.gather_for_loss(features)
    return features.index_select(0, chunks.order)
