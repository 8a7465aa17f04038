"""CoOp's prompts: token ids of `[SOS] [V]_1 ... [V]_M [CLASS] . [EOS]` and the learnt context.

Each class's prompt is laid out once as token ids (the context slots hold a placeholder word,
whose embedding is replaced), with the positions of its M context slots. The text tower pools
the end-of-text token (the highest id, as CoOp's TextEncoder takes ``argmax`` of the ids), so
the placeholder never decides where a prompt pools.
"""
from typing import List, Sequence

import torch
from torch import nn

from ltbench.api import UserError
from ltbench.api.training import generator

CLASS_POSITIONS = ("end", "middle", "front")
INITS = ("random", "phrase")
PLACEHOLDER = "X"  # CoOp's prompt_prefix "X X ... X": any word does, its embedding is replaced


def prompt_layout(name_ids: Sequence[int], dot_ids: Sequence[int], n_ctx: int, position: str, placeholder: int):
    """(ids between start and end of text, positions of the context slots within them).

    end: ctx, name, '.'; front: name, ctx, '.'; middle: ctx[:M // 2], name, ctx[M // 2:], '.'
    (CoOp's PromptLearner.forward: half_n_ctx = n_ctx // 2). name_ids / dot_ids: see name_and_dot."""
    half = n_ctx // 2
    parts = {"end": [(n_ctx, None), (0, name_ids)], "front": [(0, name_ids), (n_ctx, None)],
             "middle": [(half, None), (0, name_ids), (n_ctx - half, None)]}[position]
    ids, slots = [], []
    for slot_count, words in parts:  # a run of context slots, or the class name's words
        if words is None:
            slots.extend(range(len(ids), len(ids) + slot_count))
            ids.extend([placeholder] * slot_count)
        else:
            ids.extend(words)
    return ids + list(dot_ids), slots


def name_and_dot(clip, name: str):
    """(ids of the class-name part, ids after it) of '<name>.', split as CoOp splits them.

    CoOp tokenizes `prefix + " " + name + "."` in one go, so a name ending in punctuation merges
    with the full stop ('prey).' is the one token ').'), and its middle / front layouts take the
    first len(tokenize(name)) ids after the context as the name (trainers/coop.py: name_lens):
    there the merged token moves with the name, and only the end-of-text follows the context."""
    text = name.replace("_", " ")
    ids = clip.word_ids(text + ".")
    name_length = len(clip.word_ids(text))
    return ids[:name_length], ids[name_length:]


def class_prompts(clip, class_names: List[str], n_ctx: int, position: str):
    """(tokens [C, context] int64, context slots [C, M] int64): every class's prompt."""
    sot, eot = clip.special_ids
    placeholder = clip.word_ids(PLACEHOLDER)
    if len(placeholder) != 1:
        raise RuntimeError(f"the placeholder {PLACEHOLDER!r} is {len(placeholder)} tokens")
    context = clip.context_length
    tokens = torch.zeros(len(class_names), context, dtype=torch.int64)
    slots = torch.zeros(len(class_names), n_ctx, dtype=torch.int64)
    for row, name in enumerate(class_names):
        ids, positions = prompt_layout(*name_and_dot(clip, name), n_ctx, position, placeholder[0])
        ids = [sot] + ids + [eot]
        if len(ids) > context:
            raise UserError(f"class '{name}': its prompt with context.n_ctx={n_ctx} is {len(ids)} tokens, the "
                            f"text tower takes {context}; lower context.n_ctx")
        tokens[row, :len(ids)] = torch.tensor(ids)
        slots[row] = torch.tensor(positions) + 1  # after the start token
    return tokens, slots


class PromptLearner(nn.Module):
    """The learnt context: [M, width] shared by all classes, or [C, M, width] class-specific.

    Holds the prompts' token ids and context slots as buffers (not the embeddings: 8142 classes
    x 77 positions x 512 floats would be 1.3 GB); ``embeddings(rows)`` builds the input
    embeddings of some classes' prompts with the context in its slots, differentiably.
    """

    def __init__(self, ctx: torch.Tensor, tokens: torch.Tensor, slots: torch.Tensor, embed_tokens):
        super().__init__()
        self.ctx = nn.Parameter(ctx)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("slots", slots, persistent=False)
        self._embed_tokens = embed_tokens  # the frozen token embedding (a function, not a submodule)
        # Each prompt's length up to its end-of-text token, found once on the host, so the text
        # tower is cut per chunk without a device sync every step. The end-of-text id is both the
        # highest id and the only one in a prompt: argmax finds it for argmax and eos pooling.
        self.lengths = (tokens.argmax(dim=-1) + 1).numpy()

    @property
    def class_specific(self) -> bool:
        return self.ctx.dim() == 3

    def embeddings(self, rows: torch.Tensor) -> torch.Tensor:
        """[len(rows), context, width] input embeddings of those classes' prompts."""
        with torch.no_grad():
            words = self._embed_tokens(self.tokens[rows])
        ctx = self.ctx[rows] if self.class_specific else self.ctx.unsqueeze(0).expand(len(rows), -1, -1)
        slots = self.slots[rows].unsqueeze(-1).expand(-1, -1, words.shape[-1])
        return words.scatter(1, slots, ctx.to(words.dtype))


def initial_context(clip, options: dict, num_classes: int, seed: int) -> torch.Tensor:
    """The context before training: N(0, init_std) [paper], or a phrase's word embeddings in the
    last slots (nearest the class name in 'a photo of a [CLASS].') and N(0, init_std) before it."""
    n_ctx, width = int(options["n_ctx"]), clip.text_width
    shape = (num_classes, n_ctx, width) if options["class_specific"] else (n_ctx, width)
    ctx = torch.randn(shape, generator=generator(seed, "prompt_tuning", "context")) * float(options["init_std"])
    if options["init"] == "phrase":
        ids = phrase_ids(clip, options)
        with torch.no_grad():
            words = clip.token_embeddings(torch.tensor([ids], device=clip.device))[0].float().cpu()
        ctx[..., n_ctx - len(ids):, :] = words
    return ctx


def phrase_ids(clip, options: dict) -> List[int]:
    phrase = options["init_phrase"]
    if not isinstance(phrase, str) or not phrase.strip():
        raise UserError(f"context.init_phrase={phrase!r} must be a non-empty phrase, e.g. 'a photo of a'")
    ids = clip.word_ids(phrase.replace("_", " "))
    if len(ids) > int(options["n_ctx"]):
        raise UserError(f"context.init_phrase={phrase!r} is {len(ids)} tokens, longer than context.n_ctx="
                        f"{options['n_ctx']}; raise context.n_ctx to at least {len(ids)} or shorten the phrase")
    return ids
