"""The option tables: `ltbench list methods --options` prints them from the declared options and
the YAML, and the docs pages' tables are generated from the same rows and kept current."""
import importlib.util
import re


def _script(repo_root):
    spec = importlib.util.spec_from_file_location("make_option_tables", repo_root / "docs" / "methods" /
                                                  "make_option_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_docs_option_table_is_current(repo_root):
    script = _script(repo_root)
    pages = {path.name for path in script.pages()}
    assert {"ballad.md", "imbalance-vlm.md", "lift.md", "posthoc.md", "tackle.md", "zeroshot-and-linear-probe.md",
            "configuration.md"} <= pages
    stale = script.stale_pages()
    assert not stale, f"out of date: {stale}; run python docs/methods/make_option_tables.py"


def test_a_changed_value_makes_a_page_stale(repo_root, tmp_path, monkeypatch):
    script = _script(repo_root)
    folder = tmp_path / "configs" / "methods"
    folder.mkdir(parents=True)
    (folder / "ballad.yaml").write_text("phase_b:\n  ratio: 0.3              # [ours] a test\n")
    monkeypatch.setenv("LTBENCH_CONFIG_PATH", str(tmp_path / "configs"))
    assert [path.name for path in script.stale_pages()] == ["ballad.md"]


def test_list_options_prints_values_sources_and_per_dataset_values(run_cli):
    code, out, _ = run_cli("list", "methods", "--options", "ballad")
    assert code == 0
    assert re.search(r"^phase_a\.lr +1e-05 +code +a finite number > 0 +learning rate$", out, flags=re.M)
    assert re.search(r"^ +per digits_lt: 0\.002 \[ours\]$", out, flags=re.M)
    code, out, _ = run_cli("list", "methods", "--options", "ballad", "--dataset", "digits_lt")
    assert re.search(r"^phase_a\.lr +0\.002 +ours ", out, flags=re.M)
    code, out, _ = run_cli("list", "methods", "--options", "common")
    assert re.search(r"^shot_rule +standard +paper +one of standard, oltr ", out, flags=re.M)
    code, _, err = run_cli("list", "methods", "--options", "balad")
    assert code == 2 and "unknown method 'balad'" in err and len(err.strip().splitlines()) == 1


def test_a_variants_per_dataset_value_shows_once_with_the_value_that_wins():
    # lift_plus.yaml (_base_: lift) sets train.epochs for inat2018 and digits_lt, as lift.yaml does:
    # the table shows what a lift_plus run there resolves to, not both files' values.
    from ltbench.config import RunRequest, resolve
    from ltbench.config.describe import option_rows

    rows = {row.key: row for row in option_rows("lift_plus")}
    overrides = {where: value for where, value, _ in rows["train.epochs"].overrides}
    assert len(rows["train.epochs"].overrides) == len(overrides)
    assert overrides == {"inat2018": 15, "digits_lt": 30}
    assert resolve(RunRequest("lift_plus", "digits_lt"))["train"]["epochs"] == 30
    assert {w: v for w, v, _ in rows["tte.expand"].overrides}["per_backbone.ViT-L-14"] == 24
    lift = {row.key: row for row in option_rows("lift")}
    assert {w: v for w, v, _ in lift["train.epochs"].overrides} == {"inat2018": 20, "digits_lt": 15}
