"""Label selectors and range planning: pure, so every edge is a table row."""

from __future__ import annotations

import pytest

from infragent.errors import InfrAgentError
from infragent.query.errors import LabelSyntaxError, QueryError, TooManySeriesError
from infragent.query.plan import MAX_POINTS, plan
from infragent.query.selector import matches, parse_labels


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (None, {}),
        ("", {}),
        ("  ", {}),
        ("cpu.mode=idle", {"cpu.mode": "idle"}),
        (" a = 1 , b=2", {"a": "1", "b": "2"}),
        ("a=", {"a": ""}),
        ("a=x=y", {"a": "x=y"}),
        ('{"path": "/a,b=c"}', {"path": "/a,b=c"}),
        ("  {}", {}),
    ],
)
def test_parse_labels(raw: str | None, want: dict[str, str]) -> None:
    assert parse_labels(raw) == want


@pytest.mark.parametrize("raw", ["cpu.mode", "=x", "a=1,,b=2", "{not json", '{"a": 1}', "[1]", '["a"]'])
def test_bad_labels_name_the_parameter(raw: str) -> None:
    with pytest.raises(LabelSyntaxError) as info:
        parse_labels(raw)
    assert info.value.param == "labels"


@pytest.mark.parametrize(
    ("labels", "wanted", "want"),
    [
        ({"a": "1", "b": "2"}, {}, True),
        ({"a": "1", "b": "2"}, {"a": "1"}, True),
        ({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
        ({"a": "1"}, {"a": "2"}, False),
        ({"a": "1"}, {"a": "1", "b": "2"}, False),
    ],
)
def test_labels_match_as_a_subset(labels: dict[str, str], wanted: dict[str, str], want: bool) -> None:
    assert matches(labels, wanted) is want


@pytest.mark.parametrize(
    ("span", "step", "want"),
    [
        (3600, 10, ("raw", 10)),
        (86_400, 10, ("1m", 120.0)),  # 8,640 points would be too many
        (86_400, 90, ("1m", 120.0)),  # whole minutes: 1-minute rollups merge exactly
        (30 * 86_400, 60, ("1m", 2640.0)),
        (30 * 86_400, 3600, ("1h", 3600.0)),
        (400 * 86_400, 3600, ("1h", 36_000.0)),
        (0, 1.0, ("raw", 1.0)),
        (600, 59.5, ("raw", 59.5)),
        (600, 60, ("1m", 60.0)),
    ],
)
def test_plan_picks_the_source_and_step(span: float, step: float, want: tuple[str, float]) -> None:
    assert plan(span, step) == want


@pytest.mark.parametrize("span", [1.0, 999.0, 59_940.0, 86_400.0, 7 * 86_400.0, 400 * 86_400.0])
def test_plan_stays_under_the_point_cap(span: float) -> None:
    _, step = plan(span, 1.0)
    assert span / step + 2 <= MAX_POINTS + 1


def test_query_errors_are_infragent_errors_not_store_errors() -> None:
    err = TooManySeriesError(101, 100)
    assert isinstance(err, QueryError) and isinstance(err, InfrAgentError)
    assert (err.matched, err.limit, err.param) == (101, 100, "labels")
    assert str(err) == "101 series match, over the limit of 100"
