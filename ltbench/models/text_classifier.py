"""Zero-shot text classifiers: one L2-normalised prompt-ensemble embedding per class."""
from typing import List

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@torch.no_grad()
def build_text_classifier(clip, class_names: List[str], templates: List[str], batch_size: int = 1024,
                          autocast=None, progress: bool = False) -> torch.Tensor:
    """[C, D]: per class, encode every template filled with its name, L2-normalise each, average,
    L2-normalise again (the CLIP recipe). Prompts are encoded in batches across classes."""
    prompts = [template.format(name) for name in class_names for template in templates]
    embeddings = []
    batches = range(0, len(prompts), batch_size)
    for start in tqdm(batches, desc="text classifier", disable=not progress or len(batches) < 2,
                      leave=False):
        with autocast() if autocast else torch.autocast("cpu", enabled=False):
            embeddings.append(clip.encode_texts(prompts[start: start + batch_size]).float())
    per_prompt = torch.cat(embeddings).view(len(class_names), len(templates), -1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1)
