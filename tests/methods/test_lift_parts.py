"""LIFT's parts on the random-init tiny CLIP (a 2-block ViT): PEFT modules at their zero init
compute the frozen tower, the trained-parameter counts follow the formulas, only the modules
and the head train, the head starts as the text classifier, and TTE takes torchvision's crops."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from ltbench.app.suite import find_suite, load_suite
from ltbench.config import RunRequest, resolve
from ltbench.core.errors import UserError
from ltbench.data.crops import CropSpec, crops
from ltbench.methods.lift.method import LiftModel, lift_head
from ltbench.methods.lift.preprocess import ensemble_logits
from ltbench.models.factory import create_backbone
from ltbench.models.heads import build_head
from ltbench.models.peft import PEFT_TYPES, PeftViT, bottleneck_width, check_peft_options, text_head_weights


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_backbone("tiny")


@pytest.fixture
def visual(clip):
    """A fresh copy of the tiny tower for each test (PeftViT opens some of its weights)."""
    return copy.deepcopy(clip.model.visual)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _tower(visual, kind, **options):
    torch.manual_seed(0)
    return PeftViT(visual, kind, num_classes=10, blocks=options.pop("blocks", 1 if kind == "partial" else None),
                   **options)


@pytest.mark.parametrize("kind", ["adaptformer", "adapter", "lora", "bitfit", "full", "partial"])
def test_modules_at_their_zero_init_compute_the_frozen_tower(visual, images, kind):
    expected = visual(images)  # open_clip's own forward: ln_post(CLS) @ proj
    tower = _tower(visual, kind, space="embed")
    with torch.no_grad():
        assert torch.allclose(tower(images), expected, atol=1e-5)
        width = tower(images)
    tower.space = "width"
    assert torch.allclose(tower(images) @ visual.proj, width, atol=1e-5)


def test_a_nonzero_up_projection_changes_the_output(visual, images):
    tower = _tower(visual, "adaptformer", space="embed")
    expected = visual(images)
    with torch.no_grad():
        # Random, not constant: a constant added to every channel is what ln_post removes.
        tower.tuner["1"]["adaptformer"].up_proj.weight.normal_(std=0.1, generator=torch.Generator().manual_seed(0))
        assert not torch.allclose(tower(images), expected, atol=1e-3)


def test_bottleneck_formula():
    # 2^floor(log2(C / 2L)): ImageNet-LT / Places-LT / iNat / CIFAR-100 on 12 blocks, digits on 2.
    assert [bottleneck_width(c, 12) for c in (1000, 365, 8142, 100)] == [32, 8, 256, 4]
    assert bottleneck_width(10, 2) == 2 and bottleneck_width(3, 12) == 1


def test_trained_parameter_counts_match_the_formulas(visual):
    layers, width = 2, 64  # the tiny ViT
    mlp = 4 * width
    r = bottleneck_width(10, layers)
    bias_per_block = width + 3 * width + width + width + mlp + width  # ln_1, qkv, out, ln_2, c_fc, c_proj
    block = sum(p.numel() for p in visual.transformer.resblocks[0].parameters())
    expected = {
        "adaptformer": layers * (2 * width + width * r + r + r * width + width + 1),
        "adapter": layers * (2 * width + width * r + r + r * width + width),
        "lora": layers * 2 * (width * r + r * width),
        "vpt_shallow": 10 * width,
        "vpt_deep": layers * 10 * width,
        "ssf": layers * 2 * (3 * width + width + mlp + width + width + width),
        "bitfit": layers * bias_per_block,
        "full": layers * block,
        "partial": block,
        # LIFT+'s default ratio C / (L (12 W + 9)) of every linear's weight and bias, each int(n * ratio)
        "aft": layers * sum(int(n * 10 / (layers * (12 * width + 9))) for n in
                            (3 * width * width, 3 * width, width * width, width, mlp * width, mlp, width * mlp, width)),
    }
    assert set(expected) == set(PEFT_TYPES)
    for kind, count in expected.items():
        assert _tower(copy.deepcopy(visual), kind).trained_parameters == count, kind


def test_vit_b16_imagenet_adaptformer_is_about_0_6m_parameters():
    width, layers, r = 768, 12, bottleneck_width(1000, 12)
    per_block = 2 * width + width * r + r + r * width + width + 1
    assert r == 32 and 0.6e6 < layers * per_block < 0.63e6


def test_blocks_limit_modules_to_the_last_blocks(visual):
    tower = _tower(visual, "adaptformer", blocks=1)
    assert list(tower.tuner) == ["1"] and tower.tuned_blocks == 1
    assert _tower(copy.deepcopy(visual), "vpt_shallow").tuned_blocks == 1
    assert _tower(copy.deepcopy(visual), "bitfit").tuned_blocks == 2
    assert tower.trained_parameters == _tower(copy.deepcopy(visual), "adaptformer").trained_parameters // 2


def test_bitfit_without_blocks_is_the_codes_and_with_blocks_is_ours(visual):
    # LIFT's ViT_Tuner (models/peft_vit.py): bias_tuned = every parameter of the blocks whose name
    # ends in "bias" (LayerNorm biases included), whatever `partial`.
    code = {name for name, _ in visual.transformer.resblocks.named_parameters() if name.endswith("bias")}
    prefix = "visual.transformer.resblocks."

    def opened(tower):
        return {name.removeprefix(prefix) for name, p in tower.named_parameters() if p.requires_grad}

    assert opened(_tower(copy.deepcopy(visual), "bitfit")) == code
    # peft.blocks=K restricts ltbench's BitFit to the last K blocks [ours]; the code's partial does not.
    assert opened(_tower(visual, "bitfit", blocks=1)) == {name for name in code if name.startswith("1.")}


@pytest.mark.parametrize("kind", ["adaptformer", "lora", "vpt_deep", "ssf", "bitfit"])
def test_only_module_and_head_parameters_change(visual, images, kind):
    tower = _tower(visual, kind)
    head = build_head("cosine", tower.out_dim, 10, 25.0)
    model = LiftModel(tower, head)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9,
                                weight_decay=5e-4)
    labels = torch.tensor([0, 1, 2])
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == trained
    assert all(name.startswith(("tower.tuner.", "head.")) for name in trained) or kind == "bitfit"
    if kind == "bitfit":
        assert all(name.startswith("head.") or name.endswith("bias") for name in trained)


@pytest.mark.parametrize("space", ["width", "embed"])
def test_head_starts_as_the_text_classifier(clip, visual, images, space):
    text = F.normalize(clip.encode_texts([f"a photo of a {c}." for c in ("zero", "one", "two")]), dim=-1)
    weights = text_head_weights(text, visual, space)
    head = build_head("cosine", PeftViT(visual, "adaptformer", 3, space=space).out_dim, 3, 25.0, weights)
    if space == "embed":
        assert torch.allclose(head.weight, text, atol=1e-6)
        # Zero-initialised adapters: LIFT's first logits are the zero-shot cosines at scale 25.
        tower = PeftViT(copy.deepcopy(visual), "adaptformer", 3, space=space)
        zero_shot = F.normalize(visual(images), dim=-1) @ text.t()
        assert torch.allclose(LiftModel(tower, head)(images), 25.0 * zero_shot, atol=1e-4)
    else:
        assert torch.allclose(head.weight, F.normalize(text @ visual.proj.detach().t(), dim=-1), atol=1e-6)


def test_random_head_is_the_codes_classifier_init():
    # LIFT's _Classifier.__init__ (models/classifiers.py), which its CosineClassifier keeps when
    # init_head is not text_feat: uniform(-1, 1) rows renormalised to length 1, from torch's RNG.
    torch.manual_seed(5)
    code = torch.empty(10, 16).uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5)
    torch.manual_seed(5)
    ours = lift_head({"init": "random", "scale": 25.0}, 16, 10).weight.detach()
    torch.testing.assert_close(ours, code, rtol=0, atol=0)
    assert torch.allclose(ours.norm(dim=1), torch.ones(10))


@pytest.mark.parametrize("kind, torchvision_crops", [("five", TF.five_crop), ("ten", TF.ten_crop)])
def test_tte_crops_are_torchvisions(kind, torchvision_crops):
    images = torch.arange(2 * 3 * 9 * 11, dtype=torch.float32).view(2, 3, 9, 11)
    ours = crops(images, 6, kind)
    expected = torch.stack(list(torchvision_crops(images, [6, 6])), dim=1)
    assert ours.shape == (2, 5 if kind == "five" else 10, 3, 6, 6)
    assert torch.equal(ours, expected)


def test_tte_averages_the_crops_logits():
    views = torch.randn(2, 5, 3, 6, 6)

    def model(batch):  # 3 'classes', one per channel
        return batch.mean(dim=(2, 3))

    assert torch.allclose(ensemble_logits(model, views), views.mean(dim=(3, 4)).mean(dim=1), atol=1e-6)


@pytest.mark.parametrize("kind", ["five", "ten"])
def test_crop_spec_takes_the_codes_crops_of_the_whole_resized_image(kind):
    """Resize(shorter side to 12) + Five/TenCrop(8) of a 20 x 30 image: the batch path (in-memory
    splits) and the PIL path (files) give torchvision's crops of the 12 x 18 rectangle."""
    from PIL import Image
    from torchvision import transforms as T

    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    spec = CropSpec(size=8, resize=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear",
                    crops=kind)
    cropper = T.FiveCrop(8) if kind == "five" else T.TenCrop(8)
    resized = T.Resize(12, interpolation=T.InterpolationMode.BILINEAR)(Image.fromarray(pixels))
    assert resized.size == (18, 12)
    expected = torch.stack([(T.functional.to_tensor(view) - 0.5) / 0.25 for view in cropper(resized)])
    assert torch.allclose(spec.pil_transform()(Image.fromarray(pixels)), expected, atol=1e-6)
    batch = spec.apply_batch(pixels[None])
    assert batch.shape == (1, spec.views, 3, 8, 8)
    assert (batch[0] - expected).abs().max() <= 1.01 / 255 / 0.25  # PIL's pixels within one grey level


@pytest.mark.parametrize("options, message", [
    (["peft.type=lorra"], "peft.type='lorra'"),
    (["peft.type=partial"], "peft.blocks"),
    (["peft.bottleneck=0"], "peft.bottleneck=0"),
    (["peft.type=ssf", "peft.ssf_at=[mlp, norm]"], "peft.ssf_at"),
    (["peft.adaptformer_scale=fixed"], "peft.adaptformer_scale='fixed'"),
    (["head.space=text"], "head.space='text'"),
])
def test_bad_peft_options_are_one_line_errors_before_any_work(options, message):
    from ltbench.config import parse_cfg_options

    with pytest.raises(UserError) as error:
        resolve(RunRequest("lift", "digits_lt", options=parse_cfg_options(options)))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_peft_rules_between_options_hold_for_the_modules_too():
    with pytest.raises(UserError, match="peft.blocks"):
        check_peft_options("partial")


def test_non_vit_towers_and_too_many_blocks_are_refused(visual):
    with pytest.raises(UserError, match="need a ViT image tower"):
        PeftViT(torch.nn.Linear(3, 3), "adaptformer", 10)
    with pytest.raises(UserError, match="has 2 blocks"):
        PeftViT(visual, "partial", 10, blocks=3)


# Transcription of LIFT's configs/model/clip_vit_b16.yaml, clip_vit_l14.yaml and
# clip_vit_l14@336px.yaml: `expand`, the TTE resize margin.
CODE_TTE_EXPAND = {"ViT-B-16": 24, "ViT-L-14": 21, "ViT-L-14-336": 21}


@pytest.mark.parametrize("model, expand", CODE_TTE_EXPAND.items())
def test_tte_expand_is_the_codes_for_each_backbone(model, expand):
    for dataset in ("imagenet_lt", "places_lt", "inat2018", "cifar100_lt"):
        cfg = resolve(RunRequest(method="lift", dataset=dataset, backbone=f"{model}:openai", seed=0))
        assert cfg["tte"]["expand"] == expand, dataset


def test_the_full_fine_tuning_suite_runs_table_6s_script():
    # scripts/run_tab6_peft_methods.sh: `-m clip_vit_b16 full_tuning True lr 0.0005 tte True` on
    # imagenet_lt and `... lr 0.001 tte True` on places_lt.
    code = {"imagenet_lt": 0.0005, "places_lt": 0.001}
    suite = load_suite(find_suite("lift_full"))
    assert {entry.dataset for entry in suite.entries} == set(code)
    for entry in suite.entries:
        cfg = resolve(entry.request())
        assert (cfg["method"], cfg["backbone"]["clip"], cfg["peft"]["type"], cfg["peft"]["blocks"]) == \
            ("lift", "ViT-B-16:openai", "full", None)
        assert cfg["train"]["lr"] == code[entry.dataset] and cfg["tte"]["enabled"] is True
        assert (cfg["train"]["epochs"], cfg["train"]["batch_size"]) == (10, 128)
