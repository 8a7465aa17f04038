"""LIFT+'s parts of the PEFT family (issue 26): AFT trains exactly a fixed random subset of the
chosen linears' entries, at the stated ratio, the same subset from the same seed (and LIFT+'s
generate_mask with a fixed aft_seed); timm ViTs (the codes' ImageNet-21k towers) run through
PeftViT as their own forward does; VPT's LIFT+ placement and init, and the bottleneck's LIFT+ init."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.core.errors import UserError
from ltbench.models.factory import create_backbone
from ltbench.models.peft import AFT_TENSORS, VPT, Bottleneck, PeftViT, aft_default_ratio, check_peft_options


@pytest.fixture(scope="module")
def clip():
    return create_backbone("tiny")


@pytest.fixture
def visual(clip):
    return copy.deepcopy(clip.model.visual)


@pytest.fixture(scope="module")
def timm_vit():
    """timm's test_vit at random init (6 blocks, width 64, 160 px), as `timm:test_vit:none` builds it."""
    return create_backbone("timm:test_vit:none").model


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _tensors(tower, index):
    """The eight linear tensors of block `index`, by AFT's names."""
    _, qkv_w, qkv_b, out_w, out_b, _, _, fc1, _, fc2, _, _ = tower._tower.parts(tower._tower.blocks[index])
    return dict(zip(AFT_TENSORS["attn"] + AFT_TENSORS["mlp"],
                    (qkv_w, qkv_b, out_w, out_b, fc1.weight, fc1.bias, fc2.weight, fc2.bias)))


# --- AFT -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loc", ["attn", "mlp", "all"])
def test_aft_trains_exactly_the_masked_entries_at_the_ratio(visual, images, loc):
    ratio = 0.05
    tower = PeftViT(visual, "aft", num_classes=10, aft_ratio=ratio, aft_loc=loc, seed=3)
    before = {i: {name: t.detach().clone() for name, t in _tensors(tower, i).items()} for i in range(2)}
    with torch.no_grad():
        assert torch.equal(tower(images), PeftViT(copy.deepcopy(visual), "bitfit", 10, blocks=0)(images))
    trained = [p for p in tower.parameters() if p.requires_grad]
    assert all(not p.requires_grad for p in visual.parameters())
    expected_names = AFT_TENSORS["attn"] + AFT_TENSORS["mlp"] if loc == "all" else AFT_TENSORS[loc]
    assert tower.trained_parameters == sum(int(t.numel() * ratio) for i in range(2) for name, t in
                                           _tensors(tower, i).items() if name in expected_names)
    optimizer = torch.optim.SGD(trained, lr=0.1, weight_decay=0.5)  # decay moves every trained entry
    F.cross_entropy(tower(images) @ torch.randn(64, 10, generator=torch.Generator().manual_seed(0)),
                    torch.tensor([1, 2])).backward()
    optimizer.step()
    for i in range(2):
        for name, frozen in _tensors(tower, i).items():
            assert torch.equal(frozen, before[i][name])  # the tower's own weights are never written
            modules = tower.tuner[str(i)]
            if name not in expected_names:
                assert name not in modules
                continue
            effective = modules[name](frozen).detach()
            changed = (effective != before[i][name]).reshape(-1).nonzero().squeeze(1)
            mask = modules[name].index
            assert len(mask) == int(frozen.numel() * ratio)
            nonzero = mask[before[i][name].reshape(-1)[mask] != 0]  # decay leaves an entry at 0 where it is
            assert set(changed.tolist()) <= set(mask.tolist()) and set(nonzero.tolist()) <= set(changed.tolist())


def test_aft_masks_come_from_the_seed(visual):
    def masks(seed, aft_seed=None):
        tower = PeftViT(copy.deepcopy(visual), "aft", num_classes=10, aft_ratio=0.1, seed=seed, aft_seed=aft_seed)
        return {(i, name): m.index for i, mods in tower.tuner.items() for name, m in mods.items()}

    first, again, other = masks(0), masks(0), masks(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)
    # ltbench's own masks differ between tensors of one size (each from its purpose)...
    assert not torch.equal(first[("0", "attn_out_weight")], first[("1", "attn_out_weight")])
    # ...LIFT+'s fixed aft_seed reseeds for every tensor (models.py generate_mask), transcribed:
    fixed = masks(5, aft_seed=0)
    for (block, name), index in fixed.items():
        numel = _tensors(PeftViT(copy.deepcopy(visual), "bitfit", 10), int(block))[name].numel()
        generator = torch.Generator().manual_seed(0)
        code = torch.randperm(numel, generator=generator, dtype=torch.int64)[:int(numel * 0.1)]
        mask = torch.zeros(numel, dtype=bool).scatter_(dim=0, index=code, value=True)
        assert torch.equal(index, mask.nonzero().squeeze(1))
    reseeded = masks(9, aft_seed=0)  # a fixed aft_seed does not follow the run's seed
    assert all(torch.equal(fixed[key], reseeded[key]) for key in fixed)


def test_aft_default_ratio_is_the_codes_formula():
    # trainer.py: num_classes / (len(layers) * (embed_dim * 12 + 9)) for aft_loc all
    assert aft_default_ratio(1000, 12, 768, "all") == 1000 / (12 * (768 * 12 + 9))
    assert aft_default_ratio(365, 12, 768, "attn") == 365 / (12 * (768 * 4 + 4))
    assert aft_default_ratio(365, 12, 768, "mlp") == 365 / (12 * (768 * 8 + 5))


@pytest.mark.parametrize("method", ["lift", "lift_plus"])
@pytest.mark.parametrize("options, message", [
    (["peft.aft_ratio=0"], "peft.aft_ratio=0"), (["peft.aft_ratio=1.5"], "peft.aft_ratio=1.5"),
    (["peft.aft_loc=ffn"], "peft.aft_loc='ffn'"), (["peft.aft_seed=-1"], "peft.aft_seed=-1"),
    (["peft.vpt_position=front"], "peft.vpt_position='front'"), (["peft.down_init=xavier"], "peft.down_init='xavier'"),
    (["peft.vpt_init=zeros"], "peft.vpt_init='zeros'"),
])
def test_bad_lift_plus_peft_options_are_one_line_errors_before_any_work(method, options, message):
    from ltbench.config import RunRequest, parse_cfg_options, resolve

    with pytest.raises(UserError) as error:
        resolve(RunRequest(method, "digits_lt", options=parse_cfg_options(options)))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("options, message", [
    ({"aft_loc": "ffn"}, "peft.aft_loc"), ({"vpt_position": "front"}, "peft.vpt_position"),
    ({"down_init": "xavier"}, "peft.down_init"), ({"vpt_init": "zeros"}, "peft.vpt_init"),
])
def test_peft_names_are_checked_for_the_modules_too(options, message):
    with pytest.raises(UserError, match=message):
        check_peft_options("aft", **options)


# --- timm ViTs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["adaptformer", "adapter", "lora", "bitfit", "full", "aft"])
def test_a_timm_vit_at_zero_init_computes_its_own_forward(timm_vit, kind):
    model = copy.deepcopy(timm_vit)
    images = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(images)  # num_classes 0: the final norm's class token
        tower = PeftViT(model, kind, num_classes=10)
        assert tower.out_dim == 64 and tower.layers == 6
        assert torch.allclose(tower(images), expected, atol=1e-5)


def test_a_timm_vit_trains_its_modules_only(timm_vit):
    model = copy.deepcopy(timm_vit)
    tower = PeftViT(model, "adaptformer", num_classes=10, bottleneck=4)
    assert tower.trained_parameters == 6 * (2 * 64 + 64 * 4 + 4 + 4 * 64 + 64 + 1)
    assert all(not p.requires_grad for p in model.parameters())


def test_timm_towers_it_cannot_read_are_refused(timm_vit):
    with pytest.raises(UserError, match="head.space=embed"):
        PeftViT(copy.deepcopy(timm_vit), "adaptformer", 10, space="embed", label="timm:test_vit:none")
    pooled = create_backbone("timm:test_vit2:none").model  # average pooling, no class token
    with pytest.raises(UserError, match="timm:test_vit2:none"):
        PeftViT(pooled, "adaptformer", 10, label="timm:test_vit2:none")
    resnet = create_backbone("timm:test_resnet:none").model
    with pytest.raises(UserError, match="need a ViT image tower"):
        PeftViT(resnet, "adaptformer", 10, label="timm:test_resnet:none")


# --- VPT and the bottleneck as LIFT+ builds them -------------------------------------------------

def test_vpt_after_cls_puts_the_prompts_behind_the_class_token():
    torch.manual_seed(0)
    vpt = VPT(3, seq_len=5, patch_size=(16, 16), width=8, position="after_cls", init="normal")
    x = torch.arange(5.0).view(1, 5, 1).expand(2, 5, 8)
    once = vpt(x)
    assert once.shape == (2, 8, 8)
    assert torch.equal(once[:, 0], x[:, 0]) and torch.equal(once[:, 4:], x[:, 1:])
    assert torch.equal(once[0, 1:4], vpt.prompt)
    assert torch.equal(vpt(once), once)  # the next block's prompts replace this block's
    assert vpt.prompt.std().item() == pytest.approx(0.02, rel=0.5) and vpt.prompt.abs().max() < 0.1


def test_vpt_deep_after_cls_runs_and_keeps_the_class_token_first(visual, images):
    tower = PeftViT(visual, "vpt_deep", 10, vpt_length=3, vpt_position="after_cls", vpt_init="normal")
    assert tower(images).shape == (2, 64) and tower.trained_parameters == 2 * 3 * 64


def test_the_bottleneck_down_projection_init_is_lifts_or_lift_pluss():
    torch.manual_seed(0)
    uniform = Bottleneck(256, 64, down_init="kaiming_uniform").down_proj.weight
    torch.manual_seed(0)
    normal = Bottleneck(256, 64, down_init="kaiming_normal").down_proj.weight
    bound = 1 / math.sqrt(256)  # kaiming_uniform with a = sqrt(5): gain sqrt(1/3), bound gain * sqrt(3 / fan_in)
    assert uniform.abs().max() <= bound and uniform.abs().max() > 0.95 * bound
    assert normal.abs().max() > bound  # a normal of std bound / sqrt(3) crosses it among 16k draws
