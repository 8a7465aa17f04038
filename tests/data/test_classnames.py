import json

import pytest

from ltbench.core.errors import UserError
from ltbench.data.classnames import places_readable, read_inat_categories, read_places_classnames, read_plain_classnames


@pytest.mark.parametrize("raw, readable", [
    ("apartment_building-outdoor", "outdoor apartment building"),
    ("bazaar-indoor", "indoor bazaar"),
    ("forest-broadleaf", "broadleaf forest"),
    ("arena-hockey", "hockey arena"),
    ("canal-natural", "natural canal"),
    ("field-wild", "wild field"),
    ("elevator-door", "elevator door"),
    ("airfield", "airfield"),
    ("airport_terminal", "airport terminal"),
])
def test_places_readable(raw, readable):
    assert places_readable(raw) == readable


def test_read_places_classnames_one_or_two_fields(tmp_path):
    path = tmp_path / "classnames.txt"
    path.write_text("airfield airfield\nbazaar-indoor\n\n")
    assert read_places_classnames(path) == ["airfield", "indoor bazaar"]


def test_read_places_classnames_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "classnames.txt"
    path.write_text("airfield airfield\nbazaar-indoor bazaar-indoor extra\n")
    with pytest.raises(UserError, match=r"classnames\.txt:2:"):
        read_places_classnames(path)


def test_missing_classnames_file_names_the_path(tmp_path):
    with pytest.raises(UserError, match="not found: .*nowhere.txt"):
        read_places_classnames(tmp_path / "nowhere.txt")
    with pytest.raises(UserError, match="nowhere.json"):
        read_inat_categories(tmp_path / "nowhere.json")


def test_read_inat_categories_orders_by_id(tmp_path):
    path = tmp_path / "categories.json"
    path.write_text(json.dumps([{"id": 1, "name": "Phragmatopoma californica"},
                                {"id": 0, "name": "Hermodice carunculata", "kingdom": "Animalia"}]))
    assert read_inat_categories(path) == ["Hermodice carunculata", "Phragmatopoma californica"]


@pytest.mark.parametrize("content, message", [
    ('[{"id": 0, "name": "a"}, {"id": 2, "name": "b"}]', "ids must be 0..1"),
    ('[{"id": 0, "name": "a"}, {"id": 0, "name": "b"}]', "ids must be 0..1"),
    ('[{"name": "a"}]', "entry 0"),
    ('{"id": 0}', "JSON list"),
    ('[{"id": 0,\n "name": }]', r"categories\.json:2: not valid JSON"),
])
def test_read_inat_categories_errors(tmp_path, content, message):
    path = tmp_path / "categories.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_inat_categories(path)


def test_read_plain_classnames_skips_blank_lines(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("red fox\n\n  grey wolf  \n")
    assert read_plain_classnames(path) == ["red fox", "grey wolf"]
    path.write_text("\n\n")
    with pytest.raises(UserError, match="lists no classes"):
        read_plain_classnames(path)


@pytest.mark.parametrize("raw, readable", [
    ("subway_station-platform", "subway station platform"),
    ("bakery-shop", "bakery shop"),
    ("underwater-ocean_deep", "deep ocean underwater"),
])
def test_places_readable_keeps_noun_suffixes_and_overrides(raw, readable):
    assert places_readable(raw) == readable
