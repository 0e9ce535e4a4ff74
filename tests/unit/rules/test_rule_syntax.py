"""Durations, selectors and annotation templates: what parses, to what, and where a mistake is."""

from __future__ import annotations

import pytest

from infragent.rules.errors import RuleFileError, RuleSyntaxError
from infragent.rules.files import parse_duration, parse_selector
from infragent.rules.model import Matcher, Selector
from infragent.rules.syntax import format_duration, format_selector
from infragent.rules.templates import check_template, render


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1y", 31536000.0),
        ("250ms", 0.25),
        ("1m500ms", 60.5),
        ("0s", 0.0),
        ("90", 90.0),
        ("1.5", 1.5),
        (" 10m ", 600.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("", 0, "empty duration"),
        ("-5m", 0, "negative duration"),
        ("-3", 0, "negative duration"),
        ("5", None, None),
        ("5x", 1, "a unit"),
        ("1h30", 4, "a unit"),
        ("30s5m", 4, "largest first"),
        ("1m1m", 3, "largest first"),
        ("1.5h", 1, "a unit"),
        ("h", 0, "a number is expected"),
    ],
)
def test_bad_durations_say_where(text: str, offset: int | None, message: str | None) -> None:
    if message is None:
        parse_duration(text)
        return
    with pytest.raises(RuleSyntaxError) as caught:
        parse_duration(text)
    assert caught.value.offset == offset
    assert message in caught.value.message
    assert isinstance(caught.value, RuleFileError)  # one type for callers to catch


@pytest.mark.parametrize("seconds", [0.0, 0.25, 30.0, 90.0, 5400.0, 86400.0 * 9 + 1, 1e-4])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_is_short() -> None:
    assert [format_duration(s) for s in (0, 90, 3600, 5400, 0.5)] == ["0s", "1m30s", "1h", "1h30m", "500ms"]


def test_selectors() -> None:
    assert parse_selector("system.cpu.utilization") == Selector("system.cpu.utilization")
    assert parse_selector('cpu{mode!="idle", host=~"web-.*" ,cpu.id !~ \'1|2\',}') == Selector(
        "cpu",
        (Matcher("mode", "!=", "idle"), Matcher("host", "=~", "web-.*"), Matcher("cpu.id", "!~", "1|2")),
    )
    assert parse_selector(r'm{path="C:\\tmp \"x\"", re=~"sd[a-z]\d"}').matchers == (
        Matcher("path", "=", 'C:\\tmp "x"'),
        Matcher("re", "=~", r"sd[a-z]\d"),
    )
    assert parse_selector("m{}") == Selector("m")


def test_regex_matchers_are_anchored() -> None:
    sel = parse_selector('m{dev=~"sd.*"}')
    assert sel.matches("m", {"dev": "sda"})
    assert not sel.matches("m", {"dev": "xsda"})
    assert not sel.matches("other", {"dev": "sda"})
    assert parse_selector('m{dev!="x"}').matches("m", {})  # a missing label is ""


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ('{a="b"}', 0, "starts with a metric name"),
        ('m{9a="b"}', 2, "a label name is expected"),
        ("m{a=b}", 4, "a quoted value is expected"),
        ('m{a<"b"}', 3, "a matcher operator"),
        ('m{a="b"', 7, "',' or '}' is expected"),
        ('m{a="b}', 4, "unterminated quoted value"),
        ('m{a=~"x("}', 7, "bad regular expression"),
        ('m{__name__="x"}', 2, "__name__ is the metric name"),
        ('m{a="b"} x', 9, "unexpected 'x'"),
        ("9m", 0, "a metric name is expected"),
    ],
)
def test_bad_selectors_say_where(text: str, offset: int, message: str) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse_selector(text)
    assert (caught.value.offset, message in caught.value.message) == (offset, True), caught.value.message


@pytest.mark.parametrize(
    "text", ["m", 'm{a="b"}', 'm{a!~"x\\\\d", b="say \\"hi\\""}', 'k8s.pod/cpu:rate{k8s.pod.name=~"web-.*"}']
)
def test_format_selector_round_trips(text: str) -> None:
    sel = parse_selector(text)
    assert parse_selector(format_selector(sel)) == sel


def test_templates() -> None:
    assert check_template("{{ $labels.host }} at {{$value}}") is None
    assert check_template("{{ $labels.cpu.mode }}") is None
    assert check_template("no template") is None
    unknown = check_template("x {{ $labls.host }}")
    assert unknown is not None and unknown[0] == 2 and "unknown template expression" in unknown[1]
    bad = check_template("a {{ $value }} b {{ oops")
    assert bad is not None and bad[0] == 17 and "without a matching" in bad[1]
    assert render(
        "{{ $labels.host }}/{{ $labels.cpu.mode }}: {{ $value }}", {"host": "a", "cpu.mode": "user"}, 1.5
    ) == ("a/user: 1.5")
