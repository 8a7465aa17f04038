import numpy as np
import pytest
import torch

from ltbench.core.errors import UserError
from ltbench.models.backbones import parse_backbone
from ltbench.models.factory import create_backbone
from ltbench.models.heads import build_head
from ltbench.models.text_classifier import build_text_classifier


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_backbone("tiny")


def _parts(spec):
    return spec.family, spec.model, spec.weights


def test_parse_backbone_forms(tmp_path):
    assert _parts(parse_backbone("RN50:openai")) == ("open_clip", "RN50", "openai")
    assert parse_backbone("ViT-B-16:none").weights is None
    assert parse_backbone("tiny").model == "ltbench-tiny"
    assert _parts(parse_backbone("timm:resnet18:none")) == ("timm", "resnet18", None)
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"")
    assert parse_backbone(f"RN50:{checkpoint}").is_checkpoint
    with pytest.raises(UserError, match="MODEL:PRETRAINED"):
        parse_backbone("RN50")
    with pytest.raises(UserError, match="checkpoint file not found"):
        parse_backbone("RN50:/no/such/file.pt")


@pytest.mark.parametrize("name, message", [
    ("RN5:openai", r"unknown backbone model 'RN5' \(did you mean: RN50"),
    ("RN50:openia", r"unknown pretrained tag 'openia'.*openai"),
    ("timm:resnt18:none", r"did you mean: resnet18"),
])
def test_unknown_backbones_list_close_matches(name, message):
    with pytest.raises(UserError, match=message):
        create_backbone(name)


def test_the_hub_is_offline_however_early_it_was_imported():
    # tests/conftest.py sets HF_HUB_OFFLINE before collection; huggingface_hub reads it on import,
    # which test modules that import open_clip at their top do during collection.
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_unfetchable_weights_suggest_none_or_a_checkpoint(monkeypatch):
    # HF_HUB_OFFLINE=1 (conftest): the weights are not cached and cannot be downloaded.
    with pytest.raises(UserError, match=r"RN50:openai.*not on this machine.*HF_HUB_OFFLINE.*ltbench weights fetch "
                                        r"RN50:openai.*--backbone tiny.*RN50:none.*checkpoint"):
        create_backbone("RN50:openai")


def test_local_checkpoint_round_trip(tiny, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), path)
    loaded = create_backbone(f"ltbench-tiny:{path}")
    assert loaded.visual_fingerprint() == tiny.visual_fingerprint()
    wrong = tmp_path / "wrong.pt"
    torch.save({"nothing": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="could not load checkpoint"):
        create_backbone(f"ltbench-tiny:{wrong}")


def test_tiny_clip_encoders_are_normalised(tiny):
    transform = tiny.eval_transform
    assert transform.size == 32
    images = transform.apply_batch(np.full((3, 8, 8), 128, dtype=np.uint8))
    features = tiny.encode_images(images)
    texts = tiny.encode_texts(["a photo of a zero.", "a photo of a one."])
    assert features.shape == (3, 64) and texts.shape == (2, 64)
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_text_classifier_is_the_normalised_mean_of_normalised_prompts(tiny):
    names, templates = ["zero", "one", "two"], ["a photo of a {}.", "a drawing of the {}.", "{}"]
    classifier = build_text_classifier(tiny, names, templates, batch_size=4)
    for row, name in zip(classifier, names):
        prompts = tiny.encode_texts([t.format(name) for t in templates])
        expected = torch.nn.functional.normalize(prompts.mean(dim=0), dim=-1)
        assert torch.allclose(row, expected, atol=1e-5)


def test_fingerprints_follow_the_weights(tiny):
    visual, text = tiny.visual_fingerprint(), tiny.text_fingerprint()
    assert tiny.visual_fingerprint() == visual  # memoised, same value
    with torch.no_grad():
        tiny.model.visual.proj.add_(1.0)
    assert tiny.visual_fingerprint() != visual and tiny.text_fingerprint() == text
    with torch.no_grad():
        tiny.model.visual.proj.sub_(1.0)


def test_fingerprints_hash_batchnorm_buffers():
    """ResNet CLIPs (RN50, ...) hold 0-d int64 buffers (num_batches_tracked); their hash must work
    and follow their value."""
    from ltbench.models.fingerprint import state_dict_sha256

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    before = state_dict_sha256(module)
    module[1].num_batches_tracked += 1
    assert state_dict_sha256(module) != before


def test_heads_initialised_from_text_reproduce_zero_shot():
    text = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)
    features = torch.nn.functional.normalize(torch.randn(7, 16), dim=-1)
    zero_shot = (features @ text.t()).argmax(dim=1)
    for kind in ("linear", "cosine"):
        head = build_head(kind, 16, 5, scale=25.0, text_classifier=text)
        assert torch.equal(head(features).argmax(dim=1), zero_shot)
    with pytest.raises(UserError, match="unknown head type"):
        build_head("mlp", 16, 5, 1.0)


def test_batch_transform_close_to_the_pil_transform():
    from PIL import Image

    from ltbench.data.transforms import TransformSpec

    spec = TransformSpec(24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = np.random.default_rng(0).integers(0, 256, size=(2, 40, 30, 3), dtype=np.uint8)
    batch = spec.apply_batch(images)
    reference = torch.stack([spec.pil_transform()(Image.fromarray(image)) for image in images])
    assert batch.shape == reference.shape == (2, 3, 24, 24)
    # Same geometry, resize and normalisation (tests/test_pil_resize.py checks the pixels exactly).
    assert (batch - reference).abs().mean() < 0.05
