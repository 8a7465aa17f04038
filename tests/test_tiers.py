"""The test tiers (README, "Tests"): tests/conftest.py marks e2e by the fixtures a test takes."""


def test_a_test_taking_the_cli_fixture_is_marked_e2e(run_cli, request):
    assert request.node.get_closest_marker("e2e") is not None


def test_a_unit_test_is_not(request):
    assert request.node.get_closest_marker("e2e") is None


def test_the_markers_are_registered(pytestconfig):
    registered = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert {"e2e", "slow", "browser"} <= registered
