"""The registered classification losses, each against a value computed by hand with Python math."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltbench import losses
from ltbench.core.errors import UserError
from ltbench.losses import build_loss

LOGITS = [[2.0, 0.5, -1.0],
          [0.1, 1.5, 0.3],
          [-0.5, 0.2, 1.0]]
TARGETS = [0, 1, 2]
COUNTS = [100, 10, 1]
UNIFORM = [7, 7, 7]
NAMES = ("ce", "focal", "balanced_softmax", "class_balanced", "grw", "ldam", "lade")


def _call(spec, logits=LOGITS, targets=TARGETS, counts=COUNTS, progress=None):
    value = build_loss(spec)(torch.tensor(logits), torch.tensor(targets), counts, progress)
    assert value.dim() == 0 and value.dtype == torch.float32
    return value.item()


# ---- references in plain Python ----

def _logsumexp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _ce_terms(logits, targets, shift=None, margins=None, scale=1.0):
    """Per-sample -log softmax(scale * (z + shift - margin on the target))[y]."""
    terms = []
    for row, y in zip(logits, targets):
        z = [scale * (value + (shift[c] if shift else 0.0) - (margins[c] if margins and c == y else 0.0))
             for c, value in enumerate(row)]
        terms.append(_logsumexp(z) - z[y])
    return terms


def _mean(values):
    return sum(values) / len(values)


def _weighted_mean(terms, targets, weights):
    return sum(weights[y] * t for t, y in zip(terms, targets)) / sum(weights[y] for y in targets)


def _log_prior(counts):
    return [math.log(n / sum(counts)) for n in counts]


def _normalised(weights):
    return [w * len(weights) / sum(weights) for w in weights]


def _effective_number(counts, beta):
    return _normalised([(1 - beta) / (1 - beta ** n) for n in counts])


def _ldam_margins(counts, max_margin):
    raw = [n ** -0.25 for n in counts]
    return [max_margin * m / max(raw) for m in raw]


def _lade(logits, targets, counts, alpha, remine_lambda):
    log_prior = _log_prior(counts)
    prior_ce = _mean(_ce_terms(logits, targets, shift=log_prior))
    batch, num_classes = len(logits), len(counts)
    regulariser = 0.0
    for c in range(num_classes):
        own = [logits[i][c] for i in range(batch) if targets[i] == c]
        first = sum(own) / (len(own) + 1e-8)
        second = _logsumexp([logits[i][c] - log_prior[c] + math.log(1 / num_classes)
                             for i in range(batch)]) - math.log(batch)
        estimate = first - second - remine_lambda * second ** 2
        regulariser -= math.exp(log_prior[c]) * estimate
    return prior_ce + alpha * regulariser


CE = _mean(_ce_terms(LOGITS, TARGETS))


# ---- every loss against its hand value ----

def test_ce():
    assert _call("ce") == pytest.approx(CE, rel=1e-5)


def test_focal_by_hand_and_gamma_zero_is_ce():
    expected = _mean([-(1 - math.exp(-t)) ** 2 * -t for t in _ce_terms(LOGITS, TARGETS)])
    assert _call("focal") == pytest.approx(expected, rel=1e-5)
    expected = _mean([-(1 - math.exp(-t)) ** 0.5 * -t for t in _ce_terms(LOGITS, TARGETS)])
    assert _call({"type": "focal", "gamma": 0.5}) == pytest.approx(expected, rel=1e-5)
    assert _call({"type": "focal", "gamma": 0}) == pytest.approx(CE, rel=1e-5)


def test_balanced_softmax_by_hand_and_its_ce_cases():
    expected = _mean(_ce_terms(LOGITS, TARGETS, shift=_log_prior(COUNTS)))
    assert _call("balanced_softmax") == pytest.approx(expected, rel=1e-5)
    half = [0.5 * v for v in _log_prior(COUNTS)]
    assert _call({"type": "balanced_softmax", "tau": 0.5}) == pytest.approx(
        _mean(_ce_terms(LOGITS, TARGETS, shift=half)), rel=1e-5)
    assert _call("balanced_softmax", counts=UNIFORM) == pytest.approx(CE, rel=1e-5)
    assert _call({"type": "balanced_softmax", "tau": 0}) == pytest.approx(CE, rel=1e-5)


def test_class_balanced_inverse_frequency_and_effective_number():
    targets = [0, 0, 2]  # repeated targets: the mean is over the targets' weights, not B
    terms = _ce_terms(LOGITS, targets)
    inverse = [sum(COUNTS) / (len(COUNTS) * n) for n in COUNTS]  # 1 / (C p_c)
    assert _call("class_balanced", targets=targets) == pytest.approx(
        _weighted_mean(terms, targets, inverse), rel=1e-5)
    effective = _effective_number(COUNTS, 0.99)
    assert sum(effective) == pytest.approx(3.0)
    assert _call({"type": "class_balanced", "beta": 0.99}, targets=targets) == pytest.approx(
        _weighted_mean(terms, targets, effective), rel=1e-5)
    for spec in ("class_balanced", {"type": "class_balanced", "beta": 0.9},
                 {"type": "class_balanced", "beta": 0}):
        assert _call(spec, counts=UNIFORM) == pytest.approx(CE, rel=1e-5)
    assert _call({"type": "class_balanced", "beta": 0}) == pytest.approx(CE, rel=1e-5)


def test_grw_by_hand_and_uniform_is_ce():
    targets = [0, 1, 1]
    terms = _ce_terms(LOGITS, targets)
    weights = _normalised([(n / sum(COUNTS)) ** -1.2 for n in COUNTS])
    assert _call("grw", targets=targets) == pytest.approx(_weighted_mean(terms, targets, weights), rel=1e-5)
    weights = _normalised([(n / sum(COUNTS)) ** -0.5 for n in COUNTS])
    assert _call({"type": "grw", "exponent": 0.5}, targets=targets) == pytest.approx(
        _weighted_mean(terms, targets, weights), rel=1e-5)
    assert _call("grw", counts=UNIFORM) == pytest.approx(CE, rel=1e-5)
    assert _call({"type": "grw", "exponent": 0}) == pytest.approx(CE, rel=1e-5)
    # Huge priors ratios do not overflow.
    assert math.isfinite(_call({"type": "grw", "exponent": 8}, counts=[10 ** 6, 10, 1]))


def test_ldam_margins_largest_on_the_rarest_class():
    margins = _ldam_margins(COUNTS, 0.5)
    assert margins[2] == 0.5 and margins[0] == pytest.approx(0.5 / math.sqrt(10))
    zeros = [[0.0, 0.0, 0.0]]
    for c, margin in enumerate(margins):  # one sample of class c on zero logits: m + log(e^-m + 2)
        assert _call("ldam", logits=zeros, targets=[c]) == pytest.approx(
            margin + math.log(math.exp(-margin) + 2), rel=1e-5)
    assert _call({"type": "ldam", "max_margin": 0}) == pytest.approx(CE, rel=1e-5)


def test_ldam_by_hand_with_scale():
    margins = _ldam_margins(COUNTS, 0.5)
    assert _call("ldam") == pytest.approx(_mean(_ce_terms(LOGITS, TARGETS, margins=margins)), rel=1e-5)
    margins = _ldam_margins(COUNTS, 0.3)
    expected = _mean(_ce_terms(LOGITS, TARGETS, margins=margins, scale=3.0))
    assert _call({"type": "ldam", "max_margin": 0.3, "scale": 3.0}) == pytest.approx(expected, rel=1e-5)


def test_ldam_drw_switches_at_drw_start():
    targets = [0, 2, 2]
    terms = _ce_terms(LOGITS, targets, margins=_ldam_margins(COUNTS, 0.5))
    plain = _mean(terms)
    weighted = _weighted_mean(terms, targets, _effective_number(COUNTS, 0.9999))
    spec = {"type": "ldam", "drw_start": 0.5}
    before = [_call(spec, targets=targets, progress=p) for p in (None, 0.0, 0.49)]
    after = [_call(spec, targets=targets, progress=p) for p in (0.5, 0.8, 1.0)]
    assert before == pytest.approx([plain] * 3, rel=1e-5)
    assert after == pytest.approx([weighted] * 3, rel=1e-5)
    assert abs(plain - weighted) > 1e-2
    assert _call("ldam", targets=targets, progress=1.0) == pytest.approx(plain, rel=1e-5)  # no DRW
    weighted_99 = _weighted_mean(terms, targets, _effective_number(COUNTS, 0.99))
    assert _call({"type": "ldam", "drw_start": 0.0, "drw_beta": 0.99}, targets=targets) == pytest.approx(
        weighted_99, rel=1e-5)


def test_lade_by_hand():
    assert _call("lade") == pytest.approx(_lade(LOGITS, TARGETS, COUNTS, 0.1, 0.1), rel=1e-5)
    # Class 2 absent from the batch: it still enters through its second term.
    targets = [0, 0, 1]
    expected = _lade(LOGITS, targets, COUNTS, 0.5, 0.3)
    spec = {"type": "lade", "alpha": 0.5, "remine_lambda": 0.3}
    assert _call(spec, targets=targets) == pytest.approx(expected, rel=1e-5)
    # alpha 0 leaves PriorCE, which is Balanced Softmax.
    assert _call({"type": "lade", "alpha": 0}) == pytest.approx(_call("balanced_softmax"), rel=1e-6)


def test_lade_small_example_worked_out():
    # Two classes, counts [3, 1], one sample of class 0 with zero logits: log p = [log .75, log .25].
    # PriorCE = -log .75; second_c = (0 - log p_c + log .5) - log 1; first = [0, 0].
    second = [math.log(0.5 / 0.75), math.log(0.5 / 0.25)]
    regulariser = -sum(p * (-s - 0.1 * s * s) for p, s in zip((0.75, 0.25), second))
    expected = -math.log(0.75) + 0.1 * regulariser
    assert _call("lade", logits=[[0.0, 0.0]], targets=[0], counts=[3, 1]) == pytest.approx(expected, rel=1e-5)


def test_lade_prior_adjusted_regulariser_worked_out():
    # Imbalance-VLM's variant: the regulariser sees g = z + log p. Same sample as above:
    # g = [log .75, log .25]; first = [log .75, 0] (class 1 absent); second_c = log .5 for both.
    s = math.log(0.5)
    estimates = [math.log(0.75) - s - 0.1 * s * s, 0.0 - s - 0.1 * s * s]
    regulariser = -(0.75 * estimates[0] + 0.25 * estimates[1])
    expected = -math.log(0.75) + 0.1 * regulariser
    spec = {"type": "lade", "regularizer_logits": "prior_adjusted"}
    assert _call(spec, logits=[[0.0, 0.0]], targets=[0], counts=[3, 1]) == pytest.approx(expected, rel=1e-5)
    assert _call({"type": "lade", "regularizer_logits": "raw"}) == pytest.approx(_call("lade"), rel=1e-7)
    assert _call(spec) != pytest.approx(_call("lade"), rel=1e-3)
    with pytest.raises(UserError, match="regularizer_logits='adjusted' must be one of raw, prior_adjusted"):
        build_loss({"type": "lade", "regularizer_logits": "adjusted"})


# ---- conventions ----

@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow(name):
    logits = torch.tensor(LOGITS, requires_grad=True)
    spec = {"type": "ldam", "drw_start": 0.0} if name == "ldam" else name
    build_loss(spec)(logits, torch.tensor(TARGETS), np.array(COUNTS), progress=0.5).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_logits_compute_in_float32(name):
    logits = torch.tensor(LOGITS)
    value = build_loss(name)(logits.to(torch.bfloat16), torch.tensor(TARGETS), COUNTS)
    assert value.dtype == torch.float32
    reference = build_loss(name)(logits.to(torch.bfloat16).float(), torch.tensor(TARGETS), COUNTS)
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)


def test_registered_losses_follow_the_calling_convention():
    import inspect

    from ltbench.core.registry import LOSSES

    assert set(NAMES) <= set(LOSSES.module_dict)
    for name in NAMES:
        parameters = list(inspect.signature(LOSSES.module_dict[name]).parameters.values())
        assert [p.name for p in parameters[:4]] == ["logits", "targets", "class_counts", "progress"]
        assert parameters[3].default is None


def test_class_counts_as_list_numpy_or_tensor_and_counts_cache_sees_changes():
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    loss = build_loss("balanced_softmax")
    values = [loss(logits, targets, counts).item()
              for counts in (COUNTS, np.array(COUNTS), torch.tensor(COUNTS), torch.tensor(COUNTS).double())]
    assert values == pytest.approx([values[0]] * 4, rel=1e-6)
    counts = np.array(COUNTS)
    before = loss(logits, targets, counts).item()
    counts[:] = UNIFORM  # the same object with new values: not the cached tensor
    assert loss(logits, targets, counts).item() == pytest.approx(CE, rel=1e-5)
    assert before != pytest.approx(CE, rel=1e-3)


def test_bad_class_counts():
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    with pytest.raises(UserError, match=r"loss 'grw' needs at least one training image per class"):
        build_loss("grw")(logits, targets, [5, 0, 1])
    with pytest.raises(ValueError, match="3 classes"):
        build_loss("ldam")(logits, targets, [5, 1])
    with pytest.raises(ValueError, match="needs the training class counts"):
        build_loss("lade")(logits, targets)
    assert build_loss("ce")(logits, targets).item() == pytest.approx(CE, rel=1e-5)  # ce needs none


def test_old_style_loss_without_progress_still_works():
    def old(logits, targets, class_counts, weight=1.0):
        return weight * F.cross_entropy(logits, targets)

    bound = losses.Loss("old", old, {"weight": 2.0})
    value = bound(torch.tensor(LOGITS), torch.tensor(TARGETS), COUNTS, progress=0.3)
    assert value.item() == pytest.approx(2 * CE, rel=1e-5)
    assert repr(bound) == "old(weight=2.0)"


# ---- build_loss errors ----

def _one_line_error(spec):
    with pytest.raises(UserError) as caught:
        build_loss(spec)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unknown_option_names_the_loss_and_the_option():
    message = _one_line_error({"type": "focal", "gama": 1.0})
    assert "'focal'" in message and "'gama'" in message and "gamma" in message
    message = _one_line_error({"type": "ldam", "drw_strat": 0.5})
    assert "'ldam'" in message and "'drw_strat'" in message and "drw_start" in message
    message = _one_line_error({"type": "ce", "gamma": 2})
    assert "'ce'" in message and "'gamma'" in message
    message = _one_line_error({"type": "ldam", "progress": 0.5})
    assert "'progress'" in message and "argument of each call" in message


def test_bad_option_values_and_specs():
    assert "gamma=-1" in _one_line_error({"type": "focal", "gamma": -1})
    assert "beta=1.0" in _one_line_error({"type": "class_balanced", "beta": 1.0})
    assert "drw_start=1.5" in _one_line_error({"type": "ldam", "drw_start": 1.5})
    assert "scale=0" in _one_line_error({"type": "ldam", "scale": 0})
    assert "tau='1'" in _one_line_error({"type": "balanced_softmax", "tau": "1"})
    assert "focal" in _one_line_error("focall")
    assert "'type'" in _one_line_error({"gamma": 2.0})


def test_build_loss_accepts_names_and_mappings():
    assert repr(build_loss("focal")) == "focal()"
    assert repr(build_loss({"type": "focal", "gamma": 1.0})) == "focal(gamma=1.0)"


def test_list_losses_shows_every_loss(run_cli):
    code, out, _ = run_cli("list", "losses")
    assert code == 0
    rows = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines() if line.strip()}
    for name in NAMES:
        assert rows.get(name), f"{name} missing or without a description"
