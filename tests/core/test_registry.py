from ltbench.core import registry
from ltbench.engine.method import Method


class _EntryPoint:
    name = "third_party"

    def __init__(self, action):
        self.action = action

    def load(self):
        return self.action()


def test_entry_point_plugins_are_discovered_and_broken_ones_warn(monkeypatch, recwarn):
    def register():
        @registry.METHODS.register_module(name="third_party_method", force=True)
        class ThirdParty(Method):
            """A method from another package."""

    def broken():
        raise ImportError("missing dependency")

    monkeypatch.setattr(registry, "_loaded_groups", set())
    monkeypatch.setattr(registry, "_entry_points", lambda group: [_EntryPoint(register), _EntryPoint(broken)])
    names = dict(registry.describe(registry.METHODS))
    assert names["third_party_method"] == "A method from another package."
    assert "zeroshot_clip" in names and "linear_probe" in names
    assert any("could not load method plug-in 'third_party'" in str(w.message) for w in recwarn)
    registry.METHODS.module_dict.pop("third_party_method")


def test_every_registry_lists_descriptions():
    for reg, expected in ((registry.DATASETS, "digits_lt"), (registry.SAMPLERS, "class_balanced"),
                          (registry.LOSSES, "ce")):
        rows = dict(registry.describe(reg))
        assert rows[expected], f"{expected} has no description"


def test_dataset_plugins_come_from_their_own_entry_point_group(monkeypatch, recwarn):
    def register():
        @registry.DATASETS.register_module(name="third_party_dataset", force=True)
        def build(options, require_all_splits=True):
            """A dataset from another package."""

    def broken():
        raise ImportError("missing dependency")

    groups = {"ltbench.datasets": [_EntryPoint(register), _EntryPoint(broken)]}
    monkeypatch.setattr(registry, "_loaded_groups", set())
    monkeypatch.setattr(registry, "_entry_points", lambda group: groups.get(group, []))
    try:
        assert "third_party_dataset" not in dict(registry.describe(registry.METHODS))
        names = dict(registry.describe(registry.DATASETS))
        assert names["third_party_dataset"] == "A dataset from another package." and "digits_lt" in names
        assert any("could not load dataset plug-in 'third_party'" in str(w.message) for w in recwarn)
    finally:
        registry.DATASETS.module_dict.pop("third_party_dataset", None)
