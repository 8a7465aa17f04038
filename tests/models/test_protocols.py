"""Every backbone class satisfies the Backbone protocol (and every CLIP one ClipBackbone), and the
operations methods use in place of the wrapped module do what they say."""
import pytest
import torch

from ltbench.models import clip, timm_backbones  # noqa: F401 (every backbone class defined)
from ltbench.models.backbones import ImageEncoder
from ltbench.models.factory import create_backbone
from ltbench.models.protocols import Backbone, ClipBackbone

# One backbone name per backbone class (tiny CLIP, a random-init timm model: no download).
NAMES = {"ClipModel": "tiny", "TimmEncoder": "timm:resnet18:none"}


def _classes(base):
    return {cls for sub in base.__subclasses__() for cls in (sub, *_classes(sub))}


@pytest.fixture(scope="module")
def backbones():
    return {name: create_backbone(text) for name, text in NAMES.items()}


def test_every_backbone_class_is_covered():
    assert {cls.__name__ for cls in _classes(ImageEncoder)} == set(NAMES)


def test_every_backbone_satisfies_the_protocols(backbones):
    for backbone in backbones.values():
        assert isinstance(backbone, Backbone)
        assert isinstance(backbone, ClipBackbone) == backbone.is_clip
    assert backbones["ClipModel"].is_clip and not backbones["TimmEncoder"].is_clip
    assert not isinstance(object(), Backbone)


def test_freeze_visual_tower_and_trainable_scopes(backbones):
    clip_model = create_backbone("tiny")  # its own copy: these change requires_grad
    assert clip_model.freeze() is clip_model
    assert not any(p.requires_grad for p in clip_model.model.parameters()) and not clip_model.model.training
    tower = clip_model.visual_tower()
    assert isinstance(tower, torch.nn.Module) and tower is clip_model.model.visual
    blocks = clip_model.visual_blocks()
    opened = clip_model.trainable("last_blocks", 1)
    # The last block and what follows the blocks (final norm, projection) train; nothing of the text tower.
    assert opened == sum(p.numel() for p in tower.parameters() if p.requires_grad) > 0
    assert all(p.requires_grad for p in blocks[-1].parameters())
    assert not any(p.requires_grad for p in blocks[0].parameters())
    assert not any(p.requires_grad for name, p in clip_model.model.named_parameters() if not name.startswith("visual."))
    assert clip_model.trainable("none") == 0
    timm_model = backbones["TimmEncoder"]
    assert timm_model.visual_tower() is timm_model.model
    assert clip_model.model_name == "ltbench-tiny" and timm_model.model_name == "resnet18"
