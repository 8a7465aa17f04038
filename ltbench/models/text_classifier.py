"""Zero-shot text classifiers: one L2-normalised prompt-ensemble embedding per class."""
from typing import List

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ltbench.models.prompt_tokens import PromptTokens
from ltbench.models.text_encoding import length_sorted_batches

# Prompts are tokenised this many batches at a time and sorted by length within that window.
SORT_WINDOW_BATCHES = 16


@torch.no_grad()
def build_text_classifier(clip, class_names: List[str], templates: List[str], batch_size: int = 1024,
                          autocast=None, progress: bool = False) -> torch.Tensor:
    """[C, D]: per class, encode every template filled with its name, L2-normalise each, average,
    L2-normalise again (the CLIP recipe). Prompts are encoded in batches across classes.

    Prompts are tokenised a window of SORT_WINDOW_BATCHES batches at a time and sorted by
    token length within it, so each batch holds prompts of similar length and the text tower
    runs only up to the batch's longest one (where that is exact: models/text_encoding.py).
    The features are those of the full context; only the order in which they are summed per
    class changes (float rounding).

    Each batch is added into per-class sums at once, so memory holds C x D numbers, not one
    embedding per prompt (iNaturalist's 8142 classes x 80 templates x 768 floats would be 2 GB).

    Tokens come from models/prompt_tokens.py: each class name and template cleaned once, each
    distinct word encoded once (the same tokens as tokenising every prompt, about 30x faster:
    that tokenising took two thirds of the tiny CLIP's iNaturalist classifier).
    """
    tokenizer = getattr(clip, "tokenizer", None)
    prompts = PromptTokens(tokenizer, class_names, templates) if tokenizer is not None else None
    count = len(class_names) * len(templates)
    sums = None
    window = batch_size * SORT_WINDOW_BATCHES
    bar = tqdm(total=-(-count // batch_size), desc="text classifier", leave=False,
               disable=not progress or count <= batch_size)
    for first in range(0, count, window):
        if prompts is not None:
            tokens = prompts(first, first + window)
        else:  # a model without open_clip's tokenizer object: its own tokenize on the texts
            tokens = clip.tokenize([templates[index % len(templates)].format(class_names[index // len(templates)])
                                    for index in range(first, min(count, first + window))])
        for rows, longest in length_sorted_batches(clip.text_lengths(tokens), batch_size):
            with autocast() if autocast else torch.autocast("cpu", enabled=False):
                embeddings = clip.encode_text_tokens(tokens[torch.from_numpy(rows)], longest).float()
            if sums is None:
                sums = embeddings.new_zeros(len(class_names), embeddings.shape[1])
            owners = torch.from_numpy((first + rows) // len(templates)).to(embeddings.device)
            sums.index_add_(0, owners, embeddings)
            bar.update(1)
    bar.close()
    # The mean's 1 / len(templates) does not change the direction: normalising the sums is the same.
    return F.normalize(sums, dim=-1)
