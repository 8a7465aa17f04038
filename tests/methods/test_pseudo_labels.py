"""TACKLE's pseudo-label selection rules on hand-made probability tables."""
import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.methods.tackle.pseudo_labels import (
    assignments_from_probabilities,
    largest_non_many_count,
    pool_assignments,
    pseudo_label_precision,
    select_pseudo_labels,
)

# Train counts: class 0 many (150), class 1 medium (50), classes 2 and 3 few (10, 3).
COUNTS = [150, 50, 10, 3]
# Pool rows; the arg-max class and its probability are what selection reads.
PROBABILITIES = np.array([
    [0.70, 0.10, 0.10, 0.10],  # 0 -> class 0 (many)
    [0.05, 0.80, 0.10, 0.05],  # 1 -> class 1 (medium)
    [0.05, 0.05, 0.60, 0.30],  # 2 -> class 2, p 0.60
    [0.02, 0.02, 0.90, 0.06],  # 3 -> class 2, p 0.90
    [0.10, 0.10, 0.35, 0.45],  # 4 -> class 3, p 0.45
    [0.00, 0.05, 0.05, 0.90],  # 5 -> class 3, p 0.90
    [0.05, 0.05, 0.75, 0.15],  # 6 -> class 2, p 0.75
])


def select(**options):
    assigned, confidence = assignments_from_probabilities(PROBABILITIES)
    return select_pseudo_labels(assigned, confidence, COUNTS, **options)


def test_few_only_takes_every_image_assigned_to_a_few_shot_class():
    kept = select(classes="few")
    assert kept.indices.tolist() == [2, 3, 4, 5, 6]
    assert kept.labels.tolist() == [2, 2, 3, 3, 2]
    assert kept.added_per_class.tolist() == [0, 0, 3, 2]
    np.testing.assert_allclose(kept.confidence, [0.60, 0.90, 0.45, 0.90, 0.75])


def test_an_image_is_never_forced_into_a_tail_class_it_is_not_most_likely_to_be():
    # Row 2 has p 0.30 for class 3 but is class 2's: class 3 only gets rows 4 and 5.
    kept = select(classes="few")
    assert kept.labels[kept.indices == 2].tolist() == [2]


def test_medium_few_and_all_widen_the_eligible_classes():
    assert select(classes="medium_few").indices.tolist() == [1, 2, 3, 4, 5, 6]
    # Class 0 has 150 > 100 images: the cap keeps it from receiving any more.
    assert select(classes="all").indices.tolist() == [1, 2, 3, 4, 5, 6]
    assert select(classes="all", cap_at_many=False).indices.tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_threshold_drops_unsure_images():
    kept = select(classes="few", threshold=0.7)
    assert kept.indices.tolist() == [3, 5, 6]
    assert select(classes="few", threshold=0.9).indices.tolist() == [3, 5]


def test_top_n_keeps_the_most_confident_images_of_each_class():
    kept = select(classes="few", top_n=1)
    assert kept.indices.tolist() == [3, 5]  # class 2: p 0.90 beats 0.75 and 0.60; class 3: 0.90 beats 0.45
    assert select(classes="few", top_n=2).indices.tolist() == [3, 4, 5, 6]  # class 2 loses row 2 (0.60)
    assert len(select(classes="few", top_n=0).indices) == 0


def test_cap_stops_a_class_at_the_many_shot_threshold():
    assert largest_non_many_count("standard") == 100 and largest_non_many_count("oltr") == 99
    assigned = np.full(30, 1)
    confidence = np.linspace(0.5, 0.99, 30)
    kept = select_pseudo_labels(assigned, confidence, [200, 95, 5], classes="all")
    # Class 1 has 95 images: 5 more reach 100, the most confident five.
    assert kept.indices.tolist() == [25, 26, 27, 28, 29]
    assert select_pseudo_labels(assigned, confidence, [200, 95, 5], classes="all",
                                shot_rule="oltr").added_per_class.tolist() == [0, 4, 0]


def test_ties_go_to_the_earlier_pool_image():
    kept = select_pseudo_labels(np.array([0, 0, 0]), np.array([0.8, 0.8, 0.8]), [1, 200], classes="few", top_n=2)
    assert kept.indices.tolist() == [0, 1]


def test_precision_per_shot_group_of_the_assigned_class():
    kept = select(classes="medium_few")  # rows 1..6 labelled 1, 2, 2, 3, 3, 2
    hidden = np.array([0, 1, 3, 2, 3, -1, 2])  # row 2 is really class 3; row 5's label is unknown
    precision = pseudo_label_precision(kept, hidden, COUNTS)
    assert precision["medium"] == 100.0  # row 1
    assert precision["few"] == pytest.approx(100.0 * 3 / 4)  # rows 2 (wrong), 3, 4, 6; row 5 unknown
    assert precision["overall"] == pytest.approx(100.0 * 4 / 5)
    assert precision["many"] is None and precision["images_with_known_label"] == 5
    assert pseudo_label_precision(kept, np.full(7, -1), COUNTS) is None


def test_pool_assignments_are_the_arg_max_of_the_temperature_softmax():
    features = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    text = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assigned, confidence = pool_assignments(features, text, tau=0.1, batch_size=1)
    assert assigned.tolist() == [0, 1]
    np.testing.assert_allclose(confidence, [1 / (1 + np.exp(-10)), 1 / (1 + np.exp(-2))], rtol=1e-5)


@pytest.mark.parametrize("option, message", [
    ("select.classes=tail", "select.classes='tail': expected one of few, medium_few, all"),
    ("select.threshold=1.5", "select.threshold=1.5: expected a finite number from 0 to 1"),
    ("select.top_n=-1", "select.top_n=-1: expected a whole number >= 0 or null"),
    ("select.top_n=2.5", "select.top_n=2.5: expected a whole number >= 0 or null"),
])
def test_bad_selection_options_are_user_errors_before_any_work(option, message):
    from ltbench.config import RunRequest, parse_cfg_options, resolve

    with pytest.raises(UserError, match=message):
        resolve(RunRequest("tackle", "digits_lt", options=parse_cfg_options([option])))
