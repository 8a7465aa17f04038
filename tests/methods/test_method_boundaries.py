"""Methods stay behind the plug-in API: no module under methods/ imports the framework past
ltbench.api (and its sub-modules), another method, or reaches into a backbone's wrapped module.

Read from the source (ast), so a new method is covered without a test of its own; the
import-linter contracts (.ci/lint-imports) check the imports on the installed layout too."""
import ast
from pathlib import Path

import pytest

METHODS = Path(__file__).resolve().parent.parent.parent / "methods"
FILES = sorted(METHODS.rglob("*.py"))


def _own_package(path: Path) -> str:
    """ltbench.methods.<family> for a module of a family package, or '' for a single-module method."""
    parts = path.relative_to(METHODS).parts
    return f"ltbench.methods.{parts[0]}" if len(parts) > 1 else ""


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def past_the_api(source: str, path: Path):
    """The ltbench modules `source` imports that are neither the API nor its own package."""
    own = _own_package(path)
    return [name for name in _imports(ast.parse(source)) if name == "ltbench" or name.startswith("ltbench.")
            if not (name == "ltbench.api" or name.startswith("ltbench.api.")
                    or (own and (name == own or name.startswith(own + "."))))]


def reaches_into_a_model(source: str):
    """Lines where `source` reads `.model` of anything but `self` (a method's own model is
    ``self.model``; a backbone's wrapped module is ``self.clip.model``, ``encoder.model``)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr == "model"
            and not (isinstance(node.value, ast.Name) and node.value.id == "self"))


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(METHODS)))
def test_a_method_module_imports_only_the_api_and_its_own_package(path):
    assert past_the_api(path.read_text(encoding="utf-8"), path) == []


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(METHODS)))
def test_a_method_module_never_touches_a_backbones_wrapped_model(path):
    assert reaches_into_a_model(path.read_text(encoding="utf-8")) == [], \
        "use the Backbone operations (freeze, visual_tower, trainable, ...), not .model"


def test_the_checks_catch_what_they_look_for():
    ballad = METHODS / "ballad" / "method.py"
    assert past_the_api("from ltbench.engine.trainer import Trainer\nimport ltbench.core\n", ballad) == [
        "ltbench.engine.trainer", "ltbench.core"]
    assert past_the_api("from ltbench.methods.decoder.model import TokenDecoder\n", ballad) == [
        "ltbench.methods.decoder.model"]
    assert past_the_api("from ltbench.methods.ballad.adapters import ResidualAdapter\n"
                        "from ltbench.api.finetune import fine_tune_clip\n", ballad) == []
    assert reaches_into_a_model("self.clip.model.eval()\nvisual = encoder.model.visual\nself.model.eval()\n") == [1, 2]
