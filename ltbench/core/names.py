"""File-name-safe names of runs and stages (record files, shared stage folders)."""
import hashlib
import re

UNSAFE_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
PATH_SEPARATORS = re.compile(r"[\\/]")


def slug(text: str) -> str:
    return UNSAFE_FILE_NAME_CHARACTERS.sub("-", text)


def backbone_slug(backbone: str) -> str:
    """'ViT-B-16:openai' -> 'ViT-B-16-openai'; 'ViT-B-16:/ckpt/a/last.pt' -> 'ViT-B-16-last.pt-<hash>'.

    A checkpoint path keeps only its file name, to stay readable; the hash of the whole string
    keeps two checkpoints with the same file name (epoch_10.pt of two runs) apart.
    """
    if not PATH_SEPARATORS.search(backbone):
        return slug(backbone)
    model, colon, checkpoint = backbone.partition(":")
    if PATH_SEPARATORS.search(model):  # a bare checkpoint path, without a model name in front
        model, colon, checkpoint = "", "", backbone
    file_name = PATH_SEPARATORS.split(checkpoint)[-1]
    digest = hashlib.sha256(backbone.encode()).hexdigest()[:8]
    return slug(f"{model}{colon}{file_name}-{digest}")
