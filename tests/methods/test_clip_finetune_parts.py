"""clip_finetune's parts: which parameters a step changes for each trainable setting (ViT and
ResNet towers), the encoder's lower lr, the learnt cosine scale, and the settings checks."""
import copy
import functools

import pytest
import torch
from open_clip.model import ModifiedResNet

from ltbench.core.errors import UserError
from ltbench.engine.trainer import build_optimizer
from ltbench.methods.clip_finetune.model import ImageClassifier
from ltbench.methods.clip_finetune.settings import check_blocks
from ltbench.models.factory import create_backbone
from ltbench.models.heads import build_head
from ltbench.models.trainable import set_visual_trainable, visual_blocks

OPTIMIZER = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
             "weight_decay_1d": True}


@functools.lru_cache(maxsize=1)
def _tiny_clip_visual():
    return create_backbone("tiny", "cpu").model.visual


def _tiny_vit():
    return copy.deepcopy(_tiny_clip_visual())  # 2 resblocks of width 64, 32 px


def _tiny_resnet():
    torch.manual_seed(0)
    return ModifiedResNet(layers=(1, 1, 1, 1), output_dim=16, heads=2, image_size=32, width=8)


def _step(visual, scope, last_blocks=0, head_trains=True, learn_scale=False, encoder_scale=1.0, out=16):
    """One SGD step of an ImageClassifier; returns (names of the parameters that changed, optimizer)."""
    torch.manual_seed(0)
    head = build_head("cosine", out, 3, 25.0, learn_scale=learn_scale)
    model = ImageClassifier(visual, head)
    set_visual_trainable(visual, scope, last_blocks)
    head.requires_grad_(head_trains)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], OPTIMIZER,
                                model.lr_scales(encoder_scale))
    model.train()
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}
    return changed, optimizer, model


def _vit_names():
    return [f"visual.{name}" for name, _ in _tiny_vit().named_parameters()]


def test_scope_all_changes_every_encoder_parameter_and_the_head():
    changed, _, model = _step(_tiny_vit(), "all", out=64)
    assert changed == {name for name, _ in model.named_parameters()}


def test_last_blocks_change_only_the_last_block_and_what_follows_it():
    changed, _, _ = _step(_tiny_vit(), "last_blocks", last_blocks=1, out=64)
    expected = {n for n in _vit_names() if n.startswith("visual.transformer.resblocks.1.")} | {
        "visual.ln_post.weight", "visual.ln_post.bias", "visual.proj", "head.weight"}
    assert changed == expected


def test_zero_last_blocks_train_the_head_only():
    changed, _, _ = _step(_tiny_vit(), "last_blocks", last_blocks=0, out=64)
    assert changed == {"head.weight"}
    changed, _, _ = _step(_tiny_vit(), "none", out=64)
    assert changed == {"head.weight"}


def test_norm_and_bias_scopes_change_only_norm_or_bias_parameters():
    norms = {n for n in _vit_names() if ".ln_" in n or n.startswith(("visual.ln_pre", "visual.ln_post"))}
    biases = {n for n in _vit_names() if n.endswith("bias")}
    changed, _, _ = _step(_tiny_vit(), "norm", head_trains=False, out=64)
    assert changed == norms
    changed, _, _ = _step(_tiny_vit(), "bias", head_trains=False, out=64)
    assert changed == biases and "visual.transformer.resblocks.0.attn.in_proj_bias" in changed
    changed, _, _ = _step(_tiny_vit(), "norm_bias", head_trains=False, out=64)
    assert changed == norms | biases


def test_resnet_last_blocks_and_norm_scopes():
    visual = _tiny_resnet()
    assert len(visual_blocks(visual)) == 4  # one bottleneck in each of layer1..layer4
    changed, _, _ = _step(visual, "last_blocks", last_blocks=1)
    assert changed and all(n.startswith(("visual.layer4.", "visual.attnpool.", "head.")) for n in changed)
    assert any(n.startswith("visual.layer4.") for n in changed) and any(n.startswith("visual.attnpool.") for n in changed)
    visual = _tiny_resnet()
    batchnorms = {f"visual.{module_name}.{name}" for module_name, module in visual.named_modules()
                  if isinstance(module, torch.nn.BatchNorm2d) for name, _ in module.named_parameters(recurse=False)}
    changed, _, model = _step(visual, "norm", head_trains=False)
    # Every BatchNorm affine parameter (downsample branches too) trains, nothing else; a few of
    # this random tiny tower's get no gradient in one step (ReLUs that are off), hence <=.
    assert {name for name, p in model.named_parameters() if p.requires_grad} == batchnorms
    assert "visual.layer2.0.downsample.1.weight" in changed and changed <= batchnorms


def test_frozen_batchnorm_keeps_running_statistics_in_train_mode():
    visual = _tiny_resnet()
    statistics = visual.bn1.running_mean.clone()
    _step(visual, "all")
    assert torch.equal(visual.bn1.running_mean, statistics)
    trained = _tiny_resnet()
    model = ImageClassifier(trained, build_head("linear", 16, 3, 1.0), batchnorm="train").train()
    model(torch.randn(4, 3, 32, 32))
    assert not torch.equal(trained.bn1.running_mean, statistics)


def test_encoder_trains_at_its_lower_lr_and_the_head_at_the_full_lr():
    _, optimizer, model = _step(_tiny_vit(), "all", encoder_scale=0.01, out=64)
    head, encoder = optimizer.param_groups
    assert encoder["lr"] == pytest.approx(0.001) and head["lr"] == pytest.approx(0.1)
    assert [id(p) for p in head["params"]] == [id(p) for p in model.head.parameters()]
    assert {id(p) for p in encoder["params"]} == {id(p) for p in model.visual.parameters()}
    # No decay on 1-D parameters splits each group in two, at the group's own lr.
    split = build_optimizer(list(model.parameters()), {**OPTIMIZER, "weight_decay_1d": False},
                            model.lr_scales(0.01))
    assert sorted(round(group["lr"], 6) for group in split.param_groups) == [0.001, 0.001, 0.1, 0.1]
    assert {group["weight_decay"] for group in split.param_groups if all(p.ndim <= 1 for p in group["params"])} == {0.0}
    with pytest.raises(ValueError, match="every trainable parameter exactly once"):
        build_optimizer(list(model.parameters()), OPTIMIZER, [(1.0, list(model.head.parameters()))])


def test_learnt_cosine_scale_trains_and_a_fixed_one_does_not_exist_as_a_parameter():
    changed, _, model = _step(_tiny_vit(), "none", learn_scale=True, out=64)
    assert changed == {"head.weight", "head.log_scale"}
    fixed = build_head("cosine", 64, 3, 25.0)
    assert [name for name, _ in fixed.named_parameters()] == ["weight"]


@pytest.mark.parametrize("options, message", [
    (["trainable.scope=last_blocks", "trainable.head=false"], "trainable.last_blocks=0 with trainable.head=false"),
    (["trainable.scope=none", "trainable.head=false"], "trainable.scope=none with trainable.head=false"),
    (["trainable.scope=everything"], "trainable.scope='everything'"),
    (["trainable.last_blocks=-1"], "trainable.last_blocks=-1"),
    (["trainable.batchnorm=eval"], "trainable.batchnorm='eval'"),
    (["train.encoder_lr_scale=0"], "train.encoder_lr_scale=0"),
    (["head.type=linear", "head.learn_scale=true"], "head.learn_scale=true needs head.type=cosine"),
    (["head.init=zero"], "head.init='zero'"),
    (["head.scale=-1"], "head.scale=-1"),
])
def test_settings_that_train_nothing_or_make_no_sense_are_one_line_errors(options, message):
    from ltbench.config import RunRequest, parse_cfg_options, resolve

    with pytest.raises(UserError, match=message.replace(".", r"\.")) as error:
        resolve(RunRequest("clip_finetune", "digits_lt", options=parse_cfg_options(options)))
    assert "\n" not in str(error.value)


def test_more_last_blocks_than_the_encoder_has_is_an_error():
    check_blocks({"scope": "last_blocks", "last_blocks": 2}, 2, "tiny")
    with pytest.raises(UserError, match="trainable.last_blocks=3 .* has 2 blocks"):
        check_blocks({"scope": "last_blocks", "last_blocks": 3}, 2, "tiny")
