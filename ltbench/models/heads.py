"""Classification heads on (L2-normalised) image features, computed in float32.

A head runs in float32 even inside bf16 autocast (``float32_forward``): the encoder before it
may run in bf16, but its logits do not. A bf16 logit keeps 8 bits of mantissa, so with thousands
of classes two classes' logits round to one value and argmax takes the lower index: in a
simulation of iNaturalist's 8142 classes 0.7 to 1.8% of the predictions changed. The cost is
one [B, D] x [D, C] matmul in float32.
"""
import contextlib
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.core.errors import unknown_name

HEADS = ("linear", "cosine")
RANDOM_ROWS = ("gaussian", "uniform_unit")


def random_rows(num_classes: int, in_features: int, kind: str = "gaussian") -> torch.Tensor:
    """[C, D] random classifier rows from torch's global RNG. gaussian: N(0, 1 / D) entries (rows
    of length about 1), ltbench's; uniform_unit: LIFT's _Classifier (models/classifiers.py),
    uniform(-1, 1) entries with each row renormalised to length 1, by the same torch calls."""
    if kind == "gaussian":
        return torch.randn(num_classes, in_features) * in_features ** -0.5
    if kind == "uniform_unit":
        return torch.empty(num_classes, in_features).uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5)
    raise unknown_name("random head rows", kind, RANDOM_ROWS)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: one function per device type
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


@contextlib.contextmanager
def no_autocast():
    """The block runs without autocast (CUDA's and the CPU's), so its ops take their inputs' dtype."""
    with contextlib.ExitStack() as stack:
        for device_type in ("cuda", "cpu"):
            if _autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def float32_forward(forward):
    """A module's forward in float32 whatever autocast is on outside: floating inputs are cast to
    float32 and autocast is off inside."""

    @functools.wraps(forward)
    def in_float32(self, *inputs, **kwargs):
        inputs = [item.float() if isinstance(item, torch.Tensor) and item.is_floating_point() else item
                  for item in inputs]
        with no_autocast():
            return forward(self, *inputs, **kwargs)

    return in_float32


class Float32Linear(nn.Linear):
    """nn.Linear that computes in float32 under autocast (same parameters and state_dict keys)."""

    forward = float32_forward(nn.Linear.forward)

    @classmethod
    def sharing(cls, linear: nn.Linear) -> "Float32Linear":
        """A Float32Linear with ``linear``'s own parameters (not copies)."""
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.in_features, head.out_features = linear.in_features, linear.out_features
        head.weight, head.bias = linear.weight, linear.bias
        return head


def float32_classifier(model: nn.Module, classifier: nn.Module) -> nn.Module:
    """``model`` with its submodule ``classifier`` (a plain nn.Linear, e.g. a timm model's
    ``get_classifier()``) replaced in place by a Float32Linear on the same parameters; other
    classifiers are left as they are."""
    if type(classifier) is not nn.Linear:
        return model
    for name, module in model.named_modules():
        if module is classifier and name:
            parent_name, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attribute,
                    Float32Linear.sharing(classifier))
            break
    return model


class CosineHead(nn.Module):
    """logits = scale * cos(f, w_c): a classifier whose rows live on the unit sphere, like text features.

    learn_scale: the scale trains too, as log(scale) (CLIP's own temperature parametrisation),
    so it stays positive. rows: how the rows start (random_rows)."""

    def __init__(self, in_features: int, num_classes: int, scale: float, learn_scale: bool = False,
                 rows: str = "gaussian"):
        super().__init__()
        self.weight = nn.Parameter(random_rows(num_classes, in_features, rows))
        if learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(math.log(float(scale))))
        else:
            self.scale = float(scale)

    @float32_forward
    def forward(self, features):
        scale = self.log_scale.exp() if hasattr(self, "log_scale") else self.scale
        return scale * F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).t()


def build_head(kind: str, in_features: int, num_classes: int, scale: float, text_classifier=None,
               learn_scale: bool = False, random_init: str = "gaussian") -> nn.Module:
    """A linear or cosine head; with `text_classifier` [C, D] it starts as the zero-shot classifier
    (linear: weight = scale * t_c, bias 0; cosine: w_c = t_c). learn_scale: the cosine head's
    scale trains (a linear head's weights carry their own scale). random_init: the cosine head's
    rows without a text classifier (random_rows; a linear head keeps PyTorch's init)."""
    if kind == "linear":
        head = Float32Linear(in_features, num_classes)
        if text_classifier is not None:
            with torch.no_grad():
                head.weight.copy_(scale * text_classifier)
                head.bias.zero_()
        return head
    if kind == "cosine":
        head = CosineHead(in_features, num_classes, scale, learn_scale,
                          rows="gaussian" if text_classifier is not None else random_init)
        if text_classifier is not None:
            with torch.no_grad():
                head.weight.copy_(text_classifier)
        return head
    raise unknown_name("head type", kind, HEADS)
