"""Issue 24 item 7: two configurations of one method are told apart by the options that differ,
shortest first, not by a hash."""
from ltbench.records.labels import distinguishing_labels
from ltbench.records.tables import leaderboard_rows

BASE = {"seed": 0, "lr": 0.1, "train": {"epochs": 10, "sampler": "instance"}, "runtime": {"device": "cpu"},
        "text": {"templates": "openai_imagenet"}, "dataset": {"name": "digits_lt", "root": "/a"}}


def _with(**changes):
    import copy

    config = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    return config


def test_one_configuration_is_the_method_name():
    assert distinguishing_labels("knn", {"a" * 64: BASE}) == {"a" * 64: "knn"}


def test_the_differing_option_names_each_configuration():
    labels = distinguishing_labels("knn", {"1" * 64: _with(balanced=True), "2" * 64: _with(balanced=False)})
    assert labels == {"1" * 64: "knn[balanced=true]", "2" * 64: "knn[balanced=false]"}


def test_shortest_option_first_and_only_as_many_as_needed():
    # lr and train.sampler both differ, and either tells the two apart: the shorter one names them.
    configs = {"1" * 64: _with(lr=0.5, train__sampler="class_balanced"), "2" * 64: BASE}
    assert distinguishing_labels("lp", configs) == {"1" * 64: "lp[lr=0.5]", "2" * 64: "lp[lr=0.1]"}
    # Three configurations that one option cannot separate: two options, shortest first.
    configs = {"1" * 64: BASE, "2" * 64: _with(lr=0.5), "3" * 64: _with(lr=0.5, train__epochs=20)}
    assert distinguishing_labels("lp", configs) == {
        "1" * 64: "lp[lr=0.1,train.epochs=10]", "2" * 64: "lp[lr=0.5,train.epochs=10]",
        "3" * 64: "lp[lr=0.5,train.epochs=20]"}


def test_options_that_cannot_change_the_numbers_never_name_a_row():
    # Only the seed, runtime and data paths differ (as in records of two machines): the hash it is.
    configs = {"1" * 64: BASE, "2" * 64: _with(seed=3, runtime__device="cuda", dataset__root="/b")}
    assert distinguishing_labels("lp", configs) == {"1" * 64: "lp [111111]", "2" * 64: "lp [222222]"}


def test_a_long_value_is_no_name_and_the_hash_is_the_last_resort():
    long = ["a photo of a {}.", "a drawing of a {}.", "a sketch of a {}."]
    configs = {"1" * 64: BASE, "2" * 64: _with(text__templates=long)}
    assert distinguishing_labels("zs", configs) == {"1" * 64: "zs [111111]", "2" * 64: "zs [222222]"}


def test_leaderboard_rows_use_the_options(fake_record):
    records = [fake_record(method="linear_probe", config_hash="1" * 64, config=_with(loss="balanced_softmax")),
               fake_record(method="linear_probe", config_hash="2" * 64, config=_with(loss="ce"))]
    labels = sorted(row["method_label"] for row in leaderboard_rows(records, "places_lt"))
    assert labels == ["linear_probe[loss=balanced_softmax]", "linear_probe[loss=ce]"]
