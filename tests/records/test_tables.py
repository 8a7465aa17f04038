import csv
import io
import math
import random

import pytest

from ltbench.core.errors import UserError
from ltbench.records.tables import datasets_in, join_reported, leaderboard_rows, render_table, write_table


def three_seeds(fake_record):
    return [
        fake_record(seed=1, overall=50.0, many=60.0),
        fake_record(seed=2, overall=52.0, many=61.0),
        fake_record(seed=3, overall=54.0, many=65.0),
    ]


def test_groups_seeds_of_one_configuration_with_mean_and_sample_std(fake_record):
    [row] = leaderboard_rows(three_seeds(fake_record), "places_lt")
    assert (row["method"], row["method_label"], row["backbone"], row["split"], row["seeds"]) == (
        "linear_probe", "linear_probe", "RN50:openai", "test", 3)
    assert row["overall"] == {"mean": 52.0, "std": 2.0}  # deviations -2, 0, 2: variance 8 / 2
    assert row["many"]["mean"] == pytest.approx(62.0)
    assert row["many"]["std"] == pytest.approx(math.sqrt(7.0))  # deviations -2, -1, 3: variance 14 / 2
    assert row["medium"] == {"mean": 40.0, "std": 0.0}
    assert row["few"] == {"mean": None, "std": None}


def test_one_seed_has_no_std_and_other_datasets_are_left_out(fake_record):
    records = [fake_record(seed=4, overall=58.2), fake_record(dataset="imagenet_lt", overall=1.0)]
    [row] = leaderboard_rows(records, "places_lt")
    assert row["seeds"] == 1 and row["overall"] == {"mean": 58.2, "std": None}
    assert datasets_in(records) == ["imagenet_lt", "places_lt"]


def test_regroups_under_another_shot_rule_from_per_class_accuracy(fake_record):
    # standard: many > 100, few < 20; oltr: many >= 100, few <= 20. Class 1 was not evaluated.
    per_class = [90.0, None, 60.0, 40.0, 10.0]
    records = [
        fake_record(seed=1, per_class=per_class, many=90.0, medium=50.0, few=10.0, overall=55.0),
        fake_record(seed=2, per_class=[80.0, 70.0, 50.0, 30.0, 20.0], many=80.0, medium=50.0, few=20.0, overall=45.0),
    ]
    [row] = leaderboard_rows(records, "places_lt", shot_rule="oltr")
    # seed 1: many [90] -> 90, medium [60] -> 60, few [40, 10] -> 25
    # seed 2: many [80, 70] -> 75, medium [50] -> 50, few [30, 20] -> 25
    assert row["many"]["mean"] == pytest.approx(82.5)
    assert row["medium"]["mean"] == pytest.approx(55.0)
    assert row["few"] == {"mean": pytest.approx(25.0), "std": pytest.approx(0.0)}
    assert row["overall"]["mean"] == pytest.approx(50.0)  # overall does not depend on grouping
    # The recorded rule: the recorded numbers are used as they are.
    [same_rule] = leaderboard_rows(records, "places_lt", shot_rule="standard")
    assert same_rule["medium"]["mean"] == 50.0
    with pytest.raises(UserError, match="unknown shot rule 'oltrr'"):
        leaderboard_rows(records, "places_lt", shot_rule="oltrr")


def test_rows_do_not_depend_on_input_order(fake_record):
    records = [
        fake_record(method=method, backbone=backbone, split=split, config_hash=config_hash, seed=seed,
               overall=0.1 * seed)  # float sums depend on their order: 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1
        for method in ("zeroshot_clip", "ballad", "linear_probe")
        for backbone in ("ViT-B-16:openai", "RN50:openai")
        for split in ("val", "test")
        for config_hash in ("f" * 64, "0" * 64)
        for seed in (3, 1, 2)
    ]
    expected = leaderboard_rows(records, "places_lt")
    keys = [(row["method"], row["backbone"], row["split"], row["config_hash"]) for row in expected]
    assert keys == sorted(keys) and len(keys) == 24
    for attempt in range(5):
        random.Random(attempt).shuffle(records)
        assert leaderboard_rows(records, "places_lt") == expected


def test_hash_suffix_only_where_a_setting_has_several_configurations(fake_record):
    records = [
        fake_record(method="ballad", config_hash="123456789" * 7),
        fake_record(method="ballad", config_hash="abcdef012" * 7),
        fake_record(method="ballad", backbone="ViT-B-16:openai", config_hash="123456789" * 7),
        fake_record(method="linear_probe", config_hash="123456789" * 7),
        fake_record(method="linear_probe", backbone="ViT-B-16:openai", config_hash="abcdef012" * 7),
    ]
    labels = [(row["method_label"], row["backbone"]) for row in leaderboard_rows(records, "places_lt")]
    assert labels == [
        ("ballad [123456]", "RN50:openai"),
        ("ballad [abcdef]", "RN50:openai"),
        ("ballad", "ViT-B-16:openai"),
        ("linear_probe", "RN50:openai"),
        ("linear_probe", "ViT-B-16:openai"),
    ]


def test_a_rerun_of_the_same_seed_counts_once_with_its_newest_record(fake_record):
    older = fake_record(seed=1, overall=10.0, created="2024-01-01T00:00:00.000000+00:00")
    newer = fake_record(seed=1, overall=20.0, created="2024-03-01T09:30:00.000001+00:00")
    other_seed = fake_record(seed=2, overall=30.0)
    for records in ([older, newer, other_seed], [newer, other_seed, older]):
        [row] = leaderboard_rows(records, "places_lt")
        assert row["seeds"] == 2
        assert row["overall"]["mean"] == 25.0


@pytest.fixture
def rows(fake_record):
    return leaderboard_rows(three_seeds(fake_record) + [fake_record(backbone="ViT-B-16:openai", overall=58.2)],
                            "places_lt")


def test_markdown(rows):
    lines = render_table(rows, "md").splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "Method", "Backbone", "Split", "Seeds", "Many", "Medium", "Few", "Overall"]
    assert lines[1].startswith("|:--")
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0] == ["linear_probe", "RN50:openai", "test", "3", "62.00 ± 2.65", "40.00 ± 0.00", "-", "52.00 ± 2.00"]
    assert cells[1][-1] == "58.20"  # one seed: no ±
    # A column of single-seed numbers only stays as written (tabulate would print 58.2).
    assert render_table(rows[1:], "md").splitlines()[2].endswith(" 58.20 |")


def test_csv_has_mean_and_std_columns(rows):
    table = list(csv.reader(io.StringIO(render_table(rows, "csv"))))
    assert table[0] == ["Method", "Backbone", "Split", "Seeds", "Many", "Many std", "Medium", "Medium std",
                        "Few", "Few std", "Overall", "Overall std"]
    assert table[1] == ["linear_probe", "RN50:openai", "test", "3", "62.00", "2.65", "40.00", "0.00", "", "",
                        "52.00", "2.00"]
    assert table[2][-2:] == ["58.20", ""]


def test_latex(rows):
    text = render_table(rows, "latex")
    assert text.startswith("\\begin{tabular}{lllrrrrr}\n\\toprule\n")
    assert "\\bottomrule" in text and text.endswith("\\end{tabular}\n")
    assert "Method" in text and "Overall" in text
    assert "linear\\_probe" in text and "52.00 ± 2.00" in text


def test_unknown_format():
    with pytest.raises(UserError, match="unknown table format 'html'"):
        render_table([], "html")


def test_write_table_paths(tmp_path, rows):
    for fmt, suffix in (("md", ".md"), ("csv", ".csv"), ("latex", ".tex")):
        text = render_table(rows, fmt)
        path = write_table(tmp_path, "places_lt", text, fmt)
        assert path == tmp_path / "tables" / f"places_lt{suffix}"
        assert path.read_text(encoding="utf-8") == text


@pytest.fixture
def joined(rows, fake_published):
    entries = [
        fake_published(),
        fake_published(backbone="ViT-B-16:openai", dataset="imagenet_lt", overall=99.0),  # another dataset
        fake_published(backbone="ViT-B-16:openai", split="val", overall=98.0),  # another split
        fake_published(method="ballad", backbone="ViT-B-16:openai", overall=97.0),  # another method
    ]
    return join_reported(rows, entries, "places_lt")


def test_join_reported_matches_method_backbone_and_split(joined):
    assert [(row["backbone"], row["reported"]) for row in joined] == [
        ("RN50:openai", {"overall": 45.1, "source": "A"}),
        ("ViT-B-16:openai", {"overall": None, "source": None}),
    ]


def test_join_reported_gives_every_configuration_of_a_setting_the_number(fake_record, fake_published):
    records = [fake_record(config_hash="1" * 64), fake_record(config_hash="2" * 64),
               fake_record(backbone="RN101:openai")]
    rows = join_reported(leaderboard_rows(records, "places_lt"), [fake_published(source="A, B")], "places_lt")
    assert [(row["method_label"], row["backbone"], row["reported"]["overall"]) for row in rows] == [
        ("linear_probe", "RN101:openai", None),
        ("linear_probe [111111]", "RN50:openai", 45.1),
        ("linear_probe [222222]", "RN50:openai", 45.1),
    ]
    assert rows[1]["reported"]["source"] == "A, B"


def test_markdown_with_reported_column(joined):
    lines = render_table(joined, "md").splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "Method", "Backbone", "Split", "Seeds", "Many", "Medium", "Few", "Overall", "Reported"]
    assert lines[1].endswith("--:|")  # right-aligned, as the other numbers
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0] == ["linear_probe", "RN50:openai", "test", "3", "62.00 ± 2.65", "40.00 ± 0.00", "-",
                        "52.00 ± 2.00", "45.1 (A)"]
    assert cells[1][-2:] == ["58.20", "-"]


def test_csv_with_reported_columns(joined):
    table = list(csv.reader(io.StringIO(render_table(joined, "csv"))))
    assert table[0][-4:] == ["Overall", "Overall std", "Reported", "Reported source"]
    assert table[1] == ["linear_probe", "RN50:openai", "test", "3", "62.00", "2.65", "40.00", "0.00", "", "",
                        "52.00", "2.00", "45.1", "A"]
    assert table[2][-4:] == ["58.20", "", "", ""]


def test_latex_with_reported_column(joined):
    lines = render_table(joined, "latex").splitlines()
    assert lines[0] == "\\begin{tabular}{lllrrrrrr}"
    header = next(line for line in lines if line.strip().startswith("Method"))
    assert header.replace(" ", "").endswith("&Overall&Reported\\\\")
    rn50 = next(line for line in lines if "RN50:openai" in line)
    vit = next(line for line in lines if "ViT-B-16:openai" in line)
    assert rn50.replace(" ", "").endswith("&52.00±2.00&45.1(A)\\\\")
    assert vit.replace(" ", "").endswith("&58.20&-\\\\")


def test_reported_numbers_are_shown_as_published(fake_record, fake_published):
    rows = join_reported(leaderboard_rows([fake_record()], "places_lt"), [fake_published(overall=60.0)], "places_lt")
    assert render_table(rows, "md").splitlines()[2].endswith(" 60.0 (A) |")
    assert list(csv.reader(io.StringIO(render_table(rows, "csv"))))[1][-2:] == ["60.0", "A"]


def test_rows_without_reported_render_as_before(rows):
    plain = {fmt: render_table(rows, fmt) for fmt in ("md", "csv", "latex")}
    for text in plain.values():
        assert "Reported" not in text
    join_reported(rows, [], "places_lt")  # joined, nothing published: the column is there, empty
    assert render_table(rows, "md").splitlines()[0].rstrip(" |").endswith("Reported")
    assert all(line.rstrip(" |").endswith("-") for line in render_table(rows, "md").splitlines()[2:])
