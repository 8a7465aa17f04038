"""Published numbers: the shipped benchmarks/reported.yaml against docs/REPORTED.md, the file's
checks, the lookup (with the iNat val/test alias), and `ltbench table --reported / --no-reported`."""
import collections
import csv
import io
import re
from pathlib import Path

import pytest

from ltbench.core.atomic import write_json_atomic
from ltbench.core.errors import UserError
from ltbench.records.reported import default_reported_path, eval_splits_for, load_reported, reported_for

# A copy of the project's docs/REPORTED.md, the published numbers as the papers print them.
REPORTED_MD = Path(__file__).resolve().with_name("REPORTED.md")
SECTION_DATASETS = {"ImageNet-LT": "imagenet_lt", "Places-LT": "places_lt", "iNaturalist 2018": "inat2018",
                    "CIFAR-100-LT": "cifar100_lt"}
NUMBER = re.compile(r"\d+\.\d+")


@pytest.fixture(scope="session")
def shipped_file(repo_root):
    return repo_root / "benchmarks" / "reported.yaml"


@pytest.fixture(scope="module")
def shipped(shipped_file):
    return load_reported(shipped_file)


def find(entries, **fields):
    matches = [entry for entry in entries if all(entry[key] == value for key, value in fields.items())]
    assert len(matches) == 1, f"{len(matches)} entries with {fields}"
    return matches[0]


def test_shipped_file_is_the_default_and_loads(shipped, shipped_file, monkeypatch):
    monkeypatch.delenv("LTBENCH_BENCHMARKS", raising=False)
    assert default_reported_path() == shipped_file
    monkeypatch.setenv("LTBENCH_BENCHMARKS", "/elsewhere")
    assert default_reported_path() == Path("/elsewhere/reported.yaml")
    assert collections.Counter(entry["dataset"] for entry in shipped) == {
        "imagenet_lt": 37, "places_lt": 19, "inat2018": 4, "cifar100_lt": 7}


def test_shipped_file_has_ballad_and_zero_shot(shipped):
    ballad = find(shipped, dataset="imagenet_lt", method="ballad", backbone="RN50:openai")
    assert (ballad["overall"], ballad["source"], ballad["split"], ballad["paper_backbone"]) == (67.2, "A", "test", "RN50*")
    zero_shot = find(shipped, dataset="imagenet_lt", method="zeroshot_clip", backbone="RN50:openai")
    assert [zero_shot[key] for key in ("overall", "many", "medium", "few")] == [58.2, 59.4, 57.5, 57.6]
    assert zero_shot["source"] == "A, B"
    assert find(shipped, dataset="places_lt", method="ballad", backbone="ViT-B-16:openai")["overall"] == 49.5
    inat = find(shipped, dataset="inat2018", method="ballad", backbone="RN50:openai")
    assert (inat["overall"], inat["split"]) == (74.2, "val")
    # CLIP-initialised ('*') and ImageNet-initialised RN50 are different backbones.
    assert find(shipped, dataset="imagenet_lt", method="paco", backbone="RN50:openai")["overall"] == 60.2
    assert find(shipped, dataset="imagenet_lt", method="paco", backbone="RN50")["overall"] == 57.0
    for entry in shipped:
        if entry["backbone"] is None:  # 'CLIP ViT' / 'CLIP' of unknown size
            assert entry["paper_backbone"] in ("CLIP ViT", "CLIP")
        elif entry["paper_backbone"].endswith("*"):
            assert entry["backbone"].endswith(":openai") and "initialised from CLIP" in entry["note"]
        if entry["source"] == "D":  # the leaderboard archives do not say whether LIFT's numbers are with TTE
            assert entry["tte"] == "unknown", entry


IR_HEADER = re.compile(r"IR (\d+)")


def _reported_md_rows():
    """(dataset, method, backbone cell, overall cell, source cell, imbalance ratio or None) of every
    table row of REPORTED.md; a CIFAR table with one column per imbalance ratio gives a row per
    ratio ('-': none published)."""
    dataset, rows, ratios = None, [], None
    for line in REPORTED_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            [dataset] = [name for heading, name in SECTION_DATASETS.items() if line[3:].startswith(heading)]
            ratios = None
        elif line.startswith("| method |"):
            ratios = [int(ratio) for ratio in IR_HEADER.findall(line)] or None
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if ratios is None:
                assert len(cells) == 4 and dataset, line
                rows.append((dataset, *cells, None))
                continue
            assert len(cells) == 3 + len(ratios) and dataset, line
            method, backbone, *numbers, source = cells
            rows += [(dataset, method, backbone, number, source, ratio)
                     for ratio, number in zip(ratios, numbers) if number != "-"]
    return rows


def _expected_entries(rows):
    """One (dataset, paper_method, paper_backbone, overall, many, medium, few, source, imbalance
    ratio) per published setting."""
    expected = []
    for dataset, method, backbones, numbers, source, ratio in rows:
        keys = ", ".join(re.findall(r"\b[A-E]\b", source))
        if " / " in numbers:  # 'RN50 / RN101 / ViT-B/16 / RN50x16' with '35.3 / 36.2 / 37.8 / 37.1'
            backbones, numbers = backbones.split(" / "), numbers.split(" / ")
            assert len(backbones) == len(numbers) > 1
            for backbone, number in zip(backbones, numbers):
                expected.append((dataset, method, backbone, float(number), None, None, None, keys, ratio))
        else:  # '63.7 (73.2/59.3/52.3)': overall, then many / medium / few
            values = [float(number) for number in NUMBER.findall(numbers)]
            assert len(values) in (1, 4), numbers
            groups = values[1:] or [None] * 3
            expected.append((dataset, method, backbones, values[0], *groups, keys, ratio))
    return expected


def test_every_reported_md_number_is_in_the_shipped_file(shipped):
    rows = _reported_md_rows()
    expected = _expected_entries(rows)
    got = [(entry["dataset"], entry["paper_method"], entry["paper_backbone"], entry["overall"], entry["many"],
            entry["medium"], entry["few"], entry["source"], entry["when"].get("dataset.imbalance_ratio"))
           for entry in shipped]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    # The same, counted number by number: no number of a section is missing or added.
    for dataset in SECTION_DATASETS.values():
        in_markdown = sorted(float(n) for d, _, _, numbers, _, _ in rows if d == dataset
                             for n in NUMBER.findall(numbers))
        in_yaml = sorted(entry[key] for entry in shipped if entry["dataset"] == dataset
                         for key in ("overall", "many", "medium", "few") if entry[key] is not None)
        assert in_yaml == in_markdown and in_yaml, dataset
    assert len(expected) == 67


def test_sources_are_the_citations_of_reported_md(shipped_file):
    text = " ".join(REPORTED_MD.read_text(encoding="utf-8").split())
    citations = dict(re.findall(r"Source ([A-E]): (.+?)(?= Source [A-E]:| ##)", text))
    import yaml

    assert yaml.safe_load(shipped_file.read_text(encoding="utf-8"))["sources"] == citations
    assert set(citations) == {"A", "B", "C", "D", "E"}


def test_iNat_val_entries_match_test_runs_of_inat2018(shipped, fake_published):
    ballad = find(shipped, dataset="inat2018", method="ballad")
    assert reported_for(shipped, "inat2018", "ballad", "RN50:openai", "test") is ballad
    assert reported_for(shipped, "inat2018", "ballad", "RN50:openai", "val") is ballad  # the same file
    assert reported_for(shipped, "inat2018", "ballad", "RN50:openai", "train") is None
    assert eval_splits_for("inat2018", "val") == ("val", "test")
    # Only there: ImageNet-LT's val is a split of its own.
    assert eval_splits_for("imagenet_lt", "val") == ("val",)
    entries = [fake_published(dataset="imagenet_lt", split="val")]
    assert reported_for(entries, "imagenet_lt", "linear_probe", "RN50:openai", "test") is None
    assert reported_for(entries, "imagenet_lt", "linear_probe", "RN50:openai", "val") is entries[0]


def test_lookup_is_exact(shipped):
    assert reported_for(shipped, "imagenet_lt", "ballad", "RN50:openai", "test")["overall"] == 67.2
    assert reported_for(shipped, "places_lt", "ballad", "RN50:openai", "test")["overall"] == 46.5
    for near_miss in (("imagenet_lt", "ballad", "RN50:none", "test"), ("imagenet_lt", "ballad", "RN50", "test"),
                      ("imagenet_lt", "BALLAD", "RN50:openai", "test"), ("imagenet_lt", "ballad", "RN50:openai", "val"),
                      ("cifar100_lt", "ballad", "RN50:openai", "test"), ("imagenet_lt", "decoder", None, "test")):
        assert reported_for(shipped, *near_miss) is None, near_miss


def test_tackle_rows_match_by_paper_label_and_ensembles_with_any_named_clip(shipped):
    assert reported_for(shipped, "imagenet_lt", "tackle", "RX50", "test")["overall"] == 60.6
    assert reported_for(shipped, "places_lt", "tackle", "RN152", "test")["overall"] == 42.6
    assert reported_for(shipped, "imagenet_lt", "tackle", "DeiT-S", "test")["overall"] == 63.7
    # The paper does not name the CLIP of "DeiT-S + CLIP": any CLIP label after 'DeiT-S+' matches.
    assert reported_for(shipped, "imagenet_lt", "clip_ensemble", "DeiT-S+ViT-B-16:openai", "test")["overall"] == 66.6
    assert reported_for(shipped, "imagenet_lt", "clip_ensemble", "DeiT-S+RN50:openai", "test")["overall"] == 66.6
    for near_miss in ("DeiT-S", "DeiT-S+", "DeiT-S+RX50", "RX50+ViT-B-16:openai"):
        assert reported_for(shipped, "imagenet_lt", "clip_ensemble", near_miss, "test") is None, near_miss


VALID = """\
sources:
  A: 'Some et al., a paper.'
  B: 'Other et al., another.'
entries:
  - {dataset: places_lt, method: ballad, backbone: 'RN50:openai', paper_backbone: 'RN50*', overall: 46.5, split: test, source: A}
  - {dataset: places_lt, method: zeroshot_clip, backbone: 'RN50:openai', paper_backbone: 'RN50', overall: 35.3, many: 40.0, split: test, source: [A, B]}
"""


def test_a_valid_small_file(tmp_path):
    path = tmp_path / "reported.yaml"
    path.write_text(VALID)
    first, second = load_reported(path)
    assert (first["overall"], first["source"], first["many"], first["note"]) == (46.5, "A", None, None)
    assert (second["many"], second["source"]) == (40.0, "A, B")


@pytest.mark.parametrize("old, new, message", [
    ("overall: 35.3, ", "", r"entries\[1\]: missing field 'overall'"),
    ("backbone: 'RN50:openai', paper_backbone: 'RN50',", "paper_backbone: 'RN50',", r"entries\[1\]: missing field 'backbone'"),
    ("overall: 35.3", "overall: '35.3'", r"entries\[1\]: 'overall' must be a number, got '35.3'"),
    ("many: 40.0", "many: n/a", r"entries\[1\]: 'many' must be a number"),
    ("many: 40.0", "many: true", r"entries\[1\]: 'many' must be a number, got True"),
    ("overall: 35.3", "overall: 353", r"entries\[1\]: 'overall' must be a top-1 accuracy in percent"),
    ("source: [A, B]", "source: [A, E]", r"entries\[1\]: unknown source key 'E'"),
    ("source: A}", "source: a}", r"entries\[0\]: unknown source key 'a'"),
    ("method: zeroshot_clip", "method: ballad", r"entries\[1\]: duplicate of entries\[0\]"),
    ("many: 40.0", "manny: 40.0", r"entries\[1\]: unknown field 'manny' \(did you mean: many"),
    ("split: test, source: A}", "source: A}", r"entries\[0\]: missing field 'split'"),
    ("  B: 'Other et al., another.'\n", "", r"entries\[1\]: unknown source key 'B'"),
])
def test_bad_entries_name_the_file_and_the_entry(tmp_path, old, new, message):
    assert old in VALID
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace(old, new, 1))
    with pytest.raises(UserError, match=message) as caught:
        load_reported(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "\n" not in text


def test_inat_val_and_test_entries_of_one_setting_are_duplicates(tmp_path):
    path = tmp_path / "reported.yaml"
    path.write_text(VALID.replace("places_lt", "inat2018").replace("split: test, source: A}", "split: val, source: A}")
                    .replace("method: zeroshot_clip", "method: ballad"))
    with pytest.raises(UserError, match=r"entries\[1\]: duplicate of entries\[0\]"):
        load_reported(path)


@pytest.mark.parametrize("text, message", [
    ("entries: []\n", "missing top-level key 'sources'"),
    ("sources: {A: x}\nentries: {}\n", "'entries' must be a list"),
    ("sources: {A: x}\nentries: []\nentrys: []\n", "unknown top-level key 'entrys'"),
    ("- 1\n", "expected a mapping with 'sources' and 'entries'"),
    ("sources: {A: x}\nentries: [42]\n", r"entries\[0\]: expected a mapping of fields"),
    ("sources: [A]\nentries: []\n", "'sources' must be a mapping"),
    ("sources: {A: x\n", "invalid YAML"),
])
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        load_reported(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file(tmp_path):
    with pytest.raises(UserError, match="reported numbers file not found: .*nope.yaml"):
        load_reported(tmp_path / "nope.yaml")


WITH_SETTINGS = """\
sources:
  A: 'Some et al., a paper.'
entries:
  - {dataset: cifar100_lt, method: lift, backbone: 'ViT-B-16:openai', paper_backbone: 'ViT-B/16*', overall: 81.7, split: test, source: A, when: {dataset.imbalance_ratio: 100}}
  - {dataset: cifar100_lt, method: lift, backbone: 'ViT-B-16:openai', paper_backbone: 'ViT-B/16*', overall: 83.1, split: test, source: A, when: {dataset.imbalance_ratio: 50}}
"""


def test_entries_with_settings_match_only_runs_with_those_settings(tmp_path):
    path = tmp_path / "reported.yaml"
    path.write_text(WITH_SETTINGS)
    entries = load_reported(path)
    lookup = ("cifar100_lt", "lift", "ViT-B-16:openai", "test")
    assert reported_for(entries, *lookup, {"dataset": {"imbalance_ratio": 100}})["overall"] == 81.7
    assert reported_for(entries, *lookup, {"dataset": {"imbalance_ratio": 50.0}})["overall"] == 83.1
    for config in ({"dataset": {"imbalance_ratio": 10}}, {"dataset": {}}, {}, None):
        assert reported_for(entries, *lookup, config) is None, config
    # The same settings twice are duplicates; different settings are not.
    path.write_text(WITH_SETTINGS.replace("imbalance_ratio: 50", "imbalance_ratio: 100"))
    with pytest.raises(UserError, match=r"entries\[1\]: duplicate of entries\[0\]"):
        load_reported(path)


@pytest.mark.parametrize("when, message", [
    ("[dataset.imbalance_ratio]", "'when' must be a mapping of dotted config keys"),
    ("{}", "'when' must be a mapping of dotted config keys"),
    ("{dataset.imbalance_ratio: [100]}", "'when' value of dataset.imbalance_ratio must be a number"),
])
def test_bad_settings_are_one_line_errors(tmp_path, when, message):
    path = tmp_path / "reported.yaml"
    path.write_text(WITH_SETTINGS.replace("{dataset.imbalance_ratio: 50}", when))
    with pytest.raises(UserError, match=message) as caught:
        load_reported(path)
    assert str(caught.value).startswith(f"{path}: entries[1]: ") and "\n" not in str(caught.value)


def test_shipped_cifar_entries_name_their_imbalance_ratio(shipped):
    """CIFAR-100-LT numbers are published per imbalance ratio: a run shows the number of its own
    ratio (LIFT: 100, 50, 10), and none at a ratio nobody published (BALLAD at 10, anyone at 200)."""
    from ltbench.config import RunRequest, resolve

    for entry in (entry for entry in shipped if entry["dataset"] == "cifar100_lt"):
        assert set(entry["when"]) == {"dataset.imbalance_ratio"}, entry
    config = resolve(RunRequest(method="lift", dataset="cifar100_lt"))
    published = {100: (81.7, 89.1), 50: (83.1, 90.2), 10: (84.9, 91.3), 200: (None, None)}
    for ratio, numbers in published.items():
        config["dataset"]["imbalance_ratio"] = ratio
        for backbone, number in zip(("ViT-B-16:openai", "timm:vit_base_patch16_224"), numbers):
            entry = reported_for(shipped, "cifar100_lt", "lift", backbone, "test", config)
            assert (entry["overall"] if entry else None) == number, (ratio, backbone)
    config["dataset"]["imbalance_ratio"] = 10
    assert reported_for(shipped, "cifar100_lt", "ballad", None, "test", config) is None


def test_tte_settings_of_an_entry(tmp_path):
    """tte true / false match only runs with that tte.enabled; unknown matches either; other
    values are one-line errors."""
    path = tmp_path / "reported.yaml"
    lookup = ("cifar100_lt", "lift", "ViT-B-16:openai", "test")
    with_tte = {"dataset": {"imbalance_ratio": 100}, "tte": {"enabled": True}}
    without = {"dataset": {"imbalance_ratio": 100}, "tte": {"enabled": False}}
    path.write_text(WITH_SETTINGS.replace("source: A, when: {dataset.imbalance_ratio: 100}",
                                          "source: A, tte: true, when: {dataset.imbalance_ratio: 100}"))
    entries = load_reported(path)
    assert reported_for(entries, *lookup, with_tte)["overall"] == 81.7
    assert reported_for(entries, *lookup, without) is None
    path.write_text(WITH_SETTINGS.replace("source: A, when: {dataset.imbalance_ratio: 100}",
                                          "source: A, tte: unknown, when: {dataset.imbalance_ratio: 100}"))
    entries = load_reported(path)
    assert reported_for(entries, *lookup, with_tte) is reported_for(entries, *lookup, without) is entries[0]
    path.write_text(WITH_SETTINGS.replace("source: A, when: {dataset.imbalance_ratio: 100}",
                                          "source: A, tte: maybe, when: {dataset.imbalance_ratio: 100}"))
    with pytest.raises(UserError, match=r"entries\[0\]: 'tte' must be true .* got 'maybe'"):
        load_reported(path)


# ---- ltbench table --reported / --no-reported ----

def _results_with_records(tmp_path, fake_record):
    """Fake run records: BALLAD RN50 on ImageNet-LT (published 67.2, A) and a linear probe (not published),
    and zero-shot RN50 on iNat's test split (published on val: 2.6)."""
    results = tmp_path / "results"
    fakes = [
        fake_record(method="ballad", dataset="imagenet_lt", overall=66.0, seed=1),
        fake_record(method="ballad", dataset="imagenet_lt", overall=68.0, seed=2),
        fake_record(method="linear_probe", dataset="imagenet_lt", overall=60.0),
        fake_record(method="zeroshot_clip", dataset="inat2018", overall=3.1),
    ]
    for index, fake in enumerate(fakes):
        fake["run_id"] = f"run{index}"
        write_json_atomic(results / "runs" / fake["dataset"] / f"run{index}.json", fake)
    return results


def _md_rows(stdout, dataset):
    section = stdout.split(f"## {dataset}\n")[1].split("(written to")[0]
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in section.splitlines()[3:] if line.startswith("|"))}


def test_cli_table_shows_the_shipped_numbers_by_default(run_cli, tmp_path, monkeypatch, fake_record):
    monkeypatch.delenv("LTBENCH_BENCHMARKS", raising=False)
    results = _results_with_records(tmp_path, fake_record)
    code, stdout, stderr = run_cli("table", "--results", results)
    assert code == 0, stderr
    imagenet = _md_rows(stdout, "imagenet_lt")
    assert imagenet["ballad"][-2:] == ["67.00 ± 1.41", "67.2 (A)"]
    assert imagenet["linear_probe"][-2:] == ["60.00", "-"]
    assert _md_rows(stdout, "inat2018")["zeroshot_clip"][-2:] == ["3.10", "2.6 (A)"]  # val published, test run
    assert "67.2 (A)" in (results / "tables" / "imagenet_lt.md").read_text()

    code, stdout, stderr = run_cli("table", "--results", results, "--dataset", "imagenet_lt", "--format", "csv")
    assert code == 0, stderr
    table = list(csv.reader(io.StringIO((results / "tables" / "imagenet_lt.csv").read_text())))
    assert table[0][-2:] == ["Reported", "Reported source"]
    assert [row[-2:] for row in table[1:]] == [["67.2", "A"], ["", ""]]


def test_cli_table_with_a_given_file_and_without_the_column(run_cli, tmp_path, fake_record):
    results = _results_with_records(tmp_path, fake_record)
    mine = tmp_path / "mine.yaml"
    mine.write_text("sources: {X: 'My notes.'}\nentries:\n"
                    "  - {dataset: imagenet_lt, method: linear_probe, backbone: 'RN50:openai', paper_backbone: RN50,"
                    " overall: 61.5, split: test, source: X}\n")
    code, stdout, stderr = run_cli("table", "--results", results, "--dataset", "imagenet_lt", "--reported", mine)
    assert code == 0, stderr
    rows = _md_rows(stdout, "imagenet_lt")
    assert rows["linear_probe"][-1] == "61.5 (X)" and rows["ballad"][-1] == "-"

    code, stdout, stderr = run_cli("table", "--results", results, "--dataset", "imagenet_lt", "--no-reported")
    assert code == 0, stderr
    assert "Reported" not in stdout and "67.2" not in stdout
    assert _md_rows(stdout, "imagenet_lt")["ballad"][-1] == "67.00 ± 1.41"

    with pytest.raises(SystemExit) as caught:  # argparse's own error for exclusive options
        run_cli("table", "--results", results, "--reported", mine, "--no-reported")
    assert caught.value.code == 2


def test_cli_table_reported_errors(run_cli, tmp_path, monkeypatch, fake_record):
    results = _results_with_records(tmp_path, fake_record)
    code, stdout, stderr = run_cli("table", "--results", results, "--reported", tmp_path / "nope.yaml")
    assert code == 2 and stdout == ""
    assert stderr == f"ltbench: error: reported numbers file not found: {tmp_path / 'nope.yaml'}\n"
    assert not (results / "tables").exists()  # checked before any table is written

    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("overall: 35.3", "overall: lots"))
    code, _, stderr = run_cli("table", "--results", results, "--reported", bad)
    assert code == 2 and stderr.count("\n") == 1
    assert f"{bad}: entries[1]: 'overall' must be a number" in stderr

    # No default file (another benchmarks folder): the column is there, empty; no error.
    monkeypatch.setenv("LTBENCH_BENCHMARKS", str(tmp_path / "benchmarks"))
    code, stdout, stderr = run_cli("table", "--results", results, "--dataset", "imagenet_lt")
    assert code == 0, stderr
    assert _md_rows(stdout, "imagenet_lt")["ballad"][-2:] == ["67.00 ± 1.41", "-"]


def test_the_table_says_when_a_source_does_not_say_tte(shipped):
    from ltbench.records.tables import join_reported

    def row(method, backbone):
        return {"method": method, "backbone": backbone, "split": "test", "records": [{"config": {}}]}

    rows = join_reported([row("lift", "ViT-L-14:openai"), row("ballad", "RN50:openai")], shipped, "imagenet_lt")
    assert rows[0]["reported"] == {"overall": 82.9, "source": "D, TTE unknown"}
    assert rows[1]["reported"] == {"overall": 67.2, "source": "A"}
