"""Prompt metadata shipped with open_clip: CLIP's curated ImageNet class names and templates."""
from functools import lru_cache
from typing import List

SINGLE_TEMPLATE = "a photo of a {}."
# The template sets a config names (text.templates).
TEMPLATE_SETS = ("openai_imagenet", "single")


@lru_cache(maxsize=None)
def imagenet_clip_classnames() -> List[str]:
    """CLIP's curated ImageNet-1k names, in class-index order (two names repeat: never invert)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


@lru_cache(maxsize=None)
def openai_imagenet_templates() -> List[str]:
    """The 80 OpenAI ImageNet prompt templates as format strings with one '{}'."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]


def templates_by_name(name: str) -> List[str]:
    """'openai_imagenet' (80 templates) or 'single' ("a photo of a {}.")."""
    if name == "openai_imagenet":
        return openai_imagenet_templates()
    if name == "single":
        return [SINGLE_TEMPLATE]
    from ltbench.core.errors import unknown_name

    raise unknown_name("template set", name, TEMPLATE_SETS)
