"""Heads and the logits ltbench records run in float32 under bf16 autocast too (finding 6 of
issue 22): with many classes a bf16 logit ties its neighbours and argmax takes the lower index.

CPU autocast stands in for CUDA's: both cast a head's matmul to bf16 unless it opts out."""
import pytest
import torch
from torch import nn

from ltbench.models.calibration import build_second_stage, tau_normalised
from ltbench.models.heads import build_head

CLASSES, WIDTH = 2000, 64


def _features(count=32):
    torch.manual_seed(0)
    return torch.nn.functional.normalize(torch.randn(count, WIDTH), dim=-1)


def _head(kind):
    torch.manual_seed(1)
    head = build_head(kind, WIDTH, CLASSES, scale=25.0)
    with torch.no_grad():  # a trained linear head has a bias too
        if kind == "linear":
            head.bias.normal_()
    return head


def _second_stage(kind):
    return build_second_stage(kind, _head("linear"))


HEADS = {
    "linear": lambda: _head("linear"),
    "cosine": lambda: _head("cosine"),
    "disalign": lambda: _second_stage("disalign"),
    "lws": lambda: _second_stage("lws"),
    "marc": lambda: _second_stage("marc"),
    "crt": lambda: _second_stage("crt"),
    "taunorm": lambda: tau_normalised(_head("linear"), 0.5),
}


def _ballad_classifier():
    from ltbench.methods.ballad.adapters import ResidualAdapter, TextCosineClassifier

    torch.manual_seed(2)
    return TextCosineClassifier(ResidualAdapter(WIDTH, 0.2), torch.randn(CLASSES, WIDTH), 25.0)


def _decoder():
    from ltbench.methods.decoder.model import TokenDecoder

    torch.manual_seed(3)
    decoder = TokenDecoder(WIDTH, CLASSES, depth=0)
    return lambda tokens: decoder(tokens.unsqueeze(1).expand(-1, 3, -1))


def _timm_head():
    from ltbench.models.timm_backbones import create_timm_classifier

    torch.manual_seed(4)
    return create_timm_classifier("test_resnet", CLASSES, pretrained=False).get_classifier()


@pytest.mark.parametrize("name", list(HEADS) + ["ballad", "decoder"])
def test_a_head_under_bf16_autocast_gives_its_float32_logits(name):
    head = {"ballad": _ballad_classifier, "decoder": _decoder, **HEADS}[name]()
    features = _features()
    with torch.no_grad():
        expected = head(features)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = head(features)
            # Features an encoder gave in bf16 are cast to float32 first.
            from_bf16 = head(features.to(torch.bfloat16))
        assert torch.equal(from_bf16, head(features.to(torch.bfloat16).float()))
    assert got.dtype == torch.float32 and from_bf16.dtype == torch.float32
    assert torch.equal(got, expected)


def test_the_timm_classifier_gives_its_float32_logits():
    head = _timm_head()
    features = torch.randn(16, head.in_features)
    with torch.no_grad():
        expected = head(features)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = head(features)
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_bf16_logits_would_tie_and_change_predictions():
    """Why: the same linear head with autocast left on, on these 2000 classes."""
    head = nn.Linear(WIDTH, CLASSES)
    features = _features(256)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = head(features)
    exact = head(features)
    assert (rounded.float().argmax(1) != exact.argmax(1)).any()
