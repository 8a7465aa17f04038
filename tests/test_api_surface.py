"""The plug-in API's surface: a small core, family toolkits whose every name a method uses, and the
table in docs/architecture.md generated from the __all__ lists (.ci/api-table)."""
import ast
import importlib
import pkgutil
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_LIMIT = 30
# Core names no built-in method imports, each for a reason: the types a plug-in annotates with or
# subclasses, the registries and folders of dataset plug-ins (the README's examples use them).
CORE_WITHOUT_A_METHOD = {
    "RunContext": "the type of ctx", "Split": "the type of a split", "Trainer": "the type ctx.trainer returns",
    "Hook": "the base of a method's own hooks", "Backbone": "the backbone protocol",
    "ClipBackbone": "the CLIP backbone protocol", "DATASETS": "the dataset registry (README example)",
    "LTDataset": "a dataset builder's result (README example)", "ArraySplit": "an in-memory split (README example)",
    "add_config_path": "a plug-in's folder of YAML files (docs/adding-a-dataset.md)",
}


def _api_modules():
    api = importlib.import_module("ltbench.api")
    names = sorted(info.name for info in pkgutil.iter_modules(api.__path__, prefix="ltbench.api."))
    return api, [importlib.import_module(name) for name in names]


def _names_methods_import():
    """{module: names} that the modules under methods/ import from ltbench.api and its sub-modules."""
    imported = {}
    for path in (ROOT / "methods").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ltbench.api"):
                imported.setdefault(node.module, set()).update(alias.name for alias in node.names)
    return imported


def test_the_core_is_small_and_every_name_is_there():
    api, submodules = _api_modules()
    assert len(api.__all__) <= CORE_LIMIT, f"ltbench.api has {len(api.__all__)} names; move family tools to a sub-module"
    for module in (api, *submodules):
        assert len(set(module.__all__)) == len(module.__all__), f"{module.__name__} lists a name twice"
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
        assert module.__doc__, f"{module.__name__} says nothing of what it is for"
    every = [name for module in (api, *submodules) for name in module.__all__]
    assert len(set(every)) == len(every), "a name is exported by two API modules"


def test_every_name_serves_a_method_or_a_stated_purpose():
    api, submodules = _api_modules()
    imported = _names_methods_import()
    for module in (api, *submodules):
        used = imported.get(module.__name__, set())
        unused = set(module.__all__) - used - (set(CORE_WITHOUT_A_METHOD) if module is api else set())
        assert not unused, f"{module.__name__} exports names no method imports: {sorted(unused)}"
        assert used <= set(module.__all__), f"methods import from {module.__name__} names outside its __all__"
    assert set(CORE_WITHOUT_A_METHOD) <= set(api.__all__)


def test_the_api_table_in_the_docs_is_the_generated_one():
    tool = runpy.run_path(str(ROOT / ".ci" / "api-table"))
    generated = tool["table"]()
    assert tool["in_doc"]((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")) == generated, \
        "docs/architecture.md's API table is out of date: run .ci/api-table --write"
    api, submodules = _api_modules()
    for module in (api, *submodules):  # every name has its row
        assert all(f"| `{name}` |" in generated for name in module.__all__)


@pytest.mark.parametrize("text, first", [
    ("One sentence. Another one.", "One sentence."),
    ("Wraps\nover lines, e.g. like this. Then more.", "Wraps over lines, e.g. like this."),
    ("tau-normalisation (Kang et al. ICLR 2020): rows. More.", "tau-normalisation (Kang et al. ICLR 2020): rows."),
    ("No full stop\n\nSecond paragraph.", "No full stop"),
])
def test_the_table_takes_each_docstrings_first_sentence(text, first):
    assert runpy.run_path(str(ROOT / ".ci" / "api-table"))["first_sentence"](text) == first
