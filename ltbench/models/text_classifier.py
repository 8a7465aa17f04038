"""Zero-shot text classifiers: one L2-normalised prompt-ensemble embedding per class."""
from typing import List

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@torch.no_grad()
def build_text_classifier(clip, class_names: List[str], templates: List[str], batch_size: int = 1024,
                          autocast=None, progress: bool = False) -> torch.Tensor:
    """[C, D]: per class, encode every template filled with its name, L2-normalise each, average,
    L2-normalise again (the CLIP recipe). Prompts are encoded in batches across classes.

    Each batch is added into per-class sums at once, so memory holds C x D numbers, not one
    embedding per prompt (iNaturalist's 8142 classes x 80 templates x 768 floats would be 2 GB).
    """
    prompts = [template.format(name) for name in class_names for template in templates]
    sums = None
    batches = range(0, len(prompts), batch_size)
    for start in tqdm(batches, desc="text classifier", disable=not progress or len(batches) < 2,
                      leave=False):
        with autocast() if autocast else torch.autocast("cpu", enabled=False):
            embeddings = clip.encode_texts(prompts[start: start + batch_size]).float()
        if sums is None:
            sums = embeddings.new_zeros(len(class_names), embeddings.shape[1])
        owners = torch.arange(start, start + len(embeddings), device=embeddings.device) // len(templates)
        sums.index_add_(0, owners, embeddings)
    # The mean's 1 / len(templates) does not change the direction: normalising the sums is the same.
    return F.normalize(sums, dim=-1)
