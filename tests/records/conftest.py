"""Synthetic run records and published entries for the tests of ltbench.records."""
import pytest

CLASS_COUNTS = [150, 100, 50, 20, 5]


def record(
    method="linear_probe", backbone="RN50:openai", split="test", config_hash="a" * 64, seed=1,
    dataset="places_lt", overall=50.0, many=60.0, medium=40.0, few=None, created="2024-01-01T00:00:00.000000+00:00",
    per_class=None, shot_rule="standard", config=None,
):
    """A synthetic run record with only what tables read."""
    return {
        "schema": 1, "method": method, "backbone": backbone, "eval_split": split, "config_hash": config_hash,
        "seed": seed, "dataset": dataset, "created": created, "class_counts": CLASS_COUNTS,
        **({"config": config} if config is not None else {}),
        "metrics": {
            "overall": overall, "many": many, "medium": medium, "few": few, "shot_rule": shot_rule,
            "per_class_accuracy": per_class or [None] * len(CLASS_COUNTS),
        },
    }


def published(method="linear_probe", backbone="RN50:openai", split="test", dataset="places_lt", overall=45.1, source="A"):
    """An entry as ltbench.records.reported.load_reported returns it."""
    return {"dataset": dataset, "method": method, "backbone": backbone, "paper_backbone": backbone, "split": split,
            "overall": overall, "many": None, "medium": None, "few": None, "source": source,
            "paper_method": None, "note": None}


@pytest.fixture
def fake_record():
    """fake_record(method=..., seed=..., overall=..., ...): a run record of 5 classes (150/100/50/20/5
    training images) with only what tables read."""
    return record


@pytest.fixture
def fake_published():
    """fake_published(method=..., backbone=..., split=..., overall=..., ...): a published entry."""
    return published
