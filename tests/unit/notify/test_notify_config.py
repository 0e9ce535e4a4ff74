"""``notify/config.py``: the error table (``cases/config_errors.yaml``: every problem path of a bad
document at once), and plain tests of what parses: matcher forms, durations, intervals, channels
with their defaults, silences, inhibit rules, the route tree's ids and its document round trip,
and the one-node edits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.config import Settings
from infragent.notify import config
from infragent.notify.config import (
    DEFAULT_INHIBIT_RULES,
    MASK,
    RootDefaults,
    add_route,
    defaults_from_settings,
    mask,
    parse_channel,
    parse_duration,
    parse_inhibit_rule,
    parse_matchers,
    parse_route_tree,
    parse_silence,
    parse_time_intervals,
    remove_route,
    replace_route,
    route_tree_to_doc,
    with_ids,
)
from infragent.notify.errors import NotifyConfigError, NotifyNotFoundError
from infragent.notify.model import DEFAULT_NOTIFY_ON, EscalationStep, Matcher, TimeInterval, TimeRange

ERROR_CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "cases" / "config_errors.yaml").read_text()
)
DEFAULTS = RootDefaults(group_wait_s=30.0, group_interval_s=300.0, repeat_interval_s=14400.0)
CHANNELS = ("ops-slack", "pager", "dba-mail")
NOW = 1_000_000.0


def _check_template(text: str) -> str | None:
    """A stand-in for the renderer's check: braces must balance."""
    return None if text.count("{{") == text.count("}}") else "unclosed {{"


def _parse(case: dict[str, Any]) -> object:
    kind = case["parse"]
    doc = case.get("doc")
    if kind == "route_tree":
        return parse_route_tree(doc, DEFAULTS, CHANNELS, _check_template)
    if kind == "channel":
        return parse_channel(
            case["kind"],
            case.get("settings", {}),
            case.get("secrets", {}),
            partial=case.get("partial", False),
        )
    if kind == "silence":
        return parse_silence(doc, NOW)
    if kind == "inhibit_rule":
        return parse_inhibit_rule(doc)
    if kind == "matchers":
        return parse_matchers(doc, "matchers")
    if kind == "time_intervals":
        return parse_time_intervals(doc, "active_times")
    assert kind == "duration"
    return parse_duration(doc, "group_wait")


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c["name"])
def test_config_error_case(case: dict[str, Any]) -> None:
    with pytest.raises(NotifyConfigError) as caught:
        _parse(case)
    problems = caught.value.problems
    assert sorted(path for path, _ in problems) == sorted(case["problems"])
    for path, text in case.get("contains", {}).items():
        assert any(p == path and text in m for p, m in problems), problems
    for secret in case.get("absent", []):
        assert secret not in str(caught.value)
    assert caught.value.status == 422


# -- durations and matchers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        (90, 90.0),
        (2.5, 2.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


def test_a_negative_or_boolean_duration_is_refused() -> None:
    for bad in (-1, True, "-5m", "", None):
        with pytest.raises(NotifyConfigError):
            parse_duration(bad, "x")


def test_matcher_strings_in_every_operator_quoted_or_not() -> None:
    got = parse_matchers(
        [
            'severity="critical"',
            'host=~"web-.*"',
            "env!=dev",
            'a!~"x|y"',
            ' spaced = "a b" ',
            'q="say \\"hi\\""',
        ],
        "m",
    )
    assert got == (
        Matcher("severity", "=", "critical"),
        Matcher("host", "=~", "web-.*"),
        Matcher("env", "!=", "dev"),
        Matcher("a", "!~", "x|y"),
        Matcher("spaced", "=", "a b"),
        Matcher("q", "=", 'say "hi"'),
    )


def test_matcher_objects_mappings_and_dotted_names() -> None:
    assert parse_matchers([{"name": "system.filesystem.mountpoint", "op": "=", "value": "/"}], "m") == (
        Matcher("system.filesystem.mountpoint", "=", "/"),
    )
    assert parse_matchers({"severity": "critical", "code": 500}, "m") == (
        Matcher("severity", "=", "critical"),
        Matcher("code", "=", "500"),
    )
    assert parse_matchers([{"name": "a", "value": "b"}], "m") == (Matcher("a", "=", "b"),)


def test_matcher_text_reads_back() -> None:
    tricky = (Matcher("a", "=~", 'x"y\\d+'), Matcher("b", "!=", "line\nbreak"), Matcher("c", "=", ""))
    assert parse_matchers([config.matcher_text(m) for m in tricky], "m") == tricky


# -- time intervals -------------------------------------------------------------------------------


def test_time_interval_ranges_expand() -> None:
    (got,) = parse_time_intervals(
        [
            {
                "weekdays": ["monday:wednesday", "Sunday"],
                "times": [
                    {"start_time": "09:00", "end_time": "17:30"},
                    {"start_time": "22:00", "end_time": "24:00"},
                ],
                "days_of_month": ["1:3", "-2:-1", 15],
                "months": ["january:march", "12", 6],
                "location": "Europe/Paris",
            }
        ],
        "mute_times",
    )
    assert got == TimeInterval(
        weekdays=(0, 1, 2, 6),
        times=(TimeRange(540, 1050), TimeRange(1320, 1440)),
        days_of_month=(-2, -1, 1, 2, 3, 15),
        months=(1, 2, 3, 6, 12),
        time_zone="Europe/Paris",
    )


def test_one_interval_object_is_a_list_of_one() -> None:
    assert parse_time_intervals({"weekdays": ["saturday:sunday"]}, "x") == (TimeInterval(weekdays=(5, 6)),)


# -- route tree -----------------------------------------------------------------------------------

TREE: dict[str, Any] = {
    "receivers": ["ops-slack"],
    "group_by": ["alertname", "host"],
    "group_wait": "10s",
    "routes": [
        {
            "id": "db",
            "name": "databases",
            "matchers": ['service=~"db.*"'],
            "receivers": ["dba-mail"],
            "continue": True,
            "routes": [
                {"matchers": {"severity": "critical"}, "receivers": ["pager"], "repeat_interval": "1h"}
            ],
        },
        {
            "matchers": ["env=prod"],
            "notify_on": ["firing"],
            "escalation": [{"after": "15m", "receivers": ["pager"]}],
            "template": {"title": "{{ incident.title }}"},
            "mute_times": [{"weekdays": ["saturday:sunday"], "location": "Europe/Paris"}],
            "active_times": [{"times": [{"start_time": "08:00", "end_time": "20:00"}]}],
        },
        {"group_by": ["..."]},
    ],
}


def test_the_root_holds_every_default_and_children_inherit_by_none() -> None:
    root = parse_route_tree({}, DEFAULTS)
    assert (root.id, root.receivers, root.group_by) == ("root", (), ("alertname", "host"))
    assert (root.group_wait_s, root.group_interval_s, root.repeat_interval_s) == (30.0, 300.0, 14400.0)
    assert root.notify_on == DEFAULT_NOTIFY_ON and root.template == {}
    tree = parse_route_tree(TREE, DEFAULTS, CHANNELS, _check_template)
    assert tree.group_wait_s == 10.0 and tree.receivers == ("ops-slack",)
    db, prod, every = tree.routes
    assert (db.id, db.name, db.continue_, db.receivers, db.group_by) == (
        "db",
        "databases",
        True,
        ("dba-mail",),
        None,
    )
    assert db.routes[0].id == "db.0" and db.routes[0].repeat_interval_s == 3600.0
    assert (prod.id, every.id) == ("1", "2")
    assert prod.notify_on == frozenset({"firing"})
    assert prod.escalation == (EscalationStep(900.0, ("pager",)),)
    assert prod.mute_times[0].time_zone == "Europe/Paris"
    assert every.group_by == ("...",)


def test_defaults_come_from_settings() -> None:
    settings = Settings(notify_group_wait_s=5, notify_group_interval_s=60, notify_repeat_interval_s=600)
    assert defaults_from_settings(settings) == RootDefaults(5.0, 60.0, 600.0)
    assert config.DEFAULT_TIMINGS == defaults_from_settings(Settings()) == RootDefaults(30.0, 300.0, 14400.0)


def test_the_document_round_trips_with_ids() -> None:
    tree = parse_route_tree(TREE, DEFAULTS, CHANNELS)
    doc = route_tree_to_doc(tree)
    assert doc["id"] == "root" and doc["routes"][0]["routes"][0]["id"] == "db.0"
    assert parse_route_tree(doc, DEFAULTS, CHANNELS) == tree
    assert parse_route_tree(yaml.safe_load(yaml.safe_dump(doc)), DEFAULTS) == tree


def test_receivers_are_not_checked_without_channel_names() -> None:
    assert parse_route_tree({"receivers": ["anything"]}, DEFAULTS).receivers == ("anything",)


def test_add_route_appends_with_a_fresh_id_and_keeps_the_others() -> None:
    doc = add_route(TREE, "db", {"matchers": ["a=b"]})
    db = doc["routes"][0]
    assert [r["id"] for r in db["routes"]] == ["db.0", "db.1"]
    assert [r["id"] for r in doc["routes"]] == ["db", "1", "2"]
    added = add_route(doc, "root", {"id": "web", "routes": [{}]})
    assert added["routes"][-1]["routes"][0]["id"] == "web.0"
    assert "id" not in TREE["routes"][1]  # the input is not changed
    parse_route_tree(added, DEFAULTS, CHANNELS)


def test_a_fresh_id_skips_ids_in_use() -> None:
    doc = add_route({"routes": [{"id": "1"}]}, "root", {})
    assert [r["id"] for r in doc["routes"]] == ["1", "2"]


def test_removing_a_node_keeps_its_siblings_ids() -> None:
    doc = remove_route(TREE, "db")
    assert [r["id"] for r in doc["routes"]] == ["1", "2"]
    tree = parse_route_tree(doc, DEFAULTS, CHANNELS)
    assert [r.id for r in tree.routes] == ["1", "2"]


def test_replace_keeps_the_id_unless_given() -> None:
    doc = replace_route(TREE, "1", {"matchers": ["env=staging"]})
    assert doc["routes"][1] == {"id": "1", "matchers": ["env=staging"]}
    whole = replace_route(TREE, "root", {"receivers": ["pager"]})
    assert whole == {"id": "root", "receivers": ["pager"]}


def test_edits_of_an_unknown_id_and_of_the_root() -> None:
    for edit in (
        lambda: add_route(TREE, "nope", {}),
        lambda: replace_route(TREE, "nope", {}),
        lambda: remove_route(TREE, "nope"),
    ):
        with pytest.raises(NotifyNotFoundError) as caught:
            edit()
        assert (caught.value.what, caught.value.ident, caught.value.status) == ("route", "nope", 404)
    with pytest.raises(NotifyConfigError):
        remove_route(TREE, "root")


def test_with_ids_writes_what_the_parser_assigns() -> None:
    doc = with_ids(TREE)
    tree = parse_route_tree(TREE, DEFAULTS)
    assert [r["id"] for r in doc["routes"]] == [r.id for r in tree.routes]


# -- channels -------------------------------------------------------------------------------------


def test_channels_of_every_kind_parse() -> None:
    hook = "https://hooks.example.com/x"
    ok: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("webhook", {"url": "http://127.0.0.1:9000/hook"}, {"secret": "whsec_abc"}),
        ("slack", {}, {"url": hook}),
        ("slack_bot", {"channel": "C123"}, {"token": "xoxb-1"}),
        ("discord", {}, {"url": hook}),
        ("teams", {}, {"url": hook}),
        ("pagerduty", {"severity_map": {"warning": "warning"}}, {"routing_key": "R0"}),
        ("inapp", {"roles": ["viewer", "admin"]}, {}),
        ("inapp", {}, {}),
    ]
    for kind, settings, secrets in ok:
        got_settings, got_secrets = parse_channel(kind, settings, secrets)
        assert got_secrets == secrets
        assert got_settings == (settings if kind != "inapp" else {k: sorted(v) for k, v in settings.items()})


def test_email_gets_its_port_from_security() -> None:
    base = {"host": "smtp.example.com", "from": "infragent@example.com", "to": ["ops@example.com"]}
    assert parse_channel("email", base, {})[0] | {} == base | {"security": "starttls", "port": 587}
    assert parse_channel("email", base | {"security": "tls"}, {})[0]["port"] == 465
    assert parse_channel("email", base | {"security": "none"}, {})[0]["port"] == 25
    assert parse_channel("email", base | {"security": "tls", "port": 2465}, {})[0]["port"] == 2465
    assert parse_channel("email", {"port": 25}, None, partial=True) == ({"port": 25}, {})


def test_apprise_takes_one_url_or_a_list() -> None:
    assert parse_channel("apprise", {}, {"urls": "tgram://bot/chat"}) == ({}, {"urls": ["tgram://bot/chat"]})


def test_mask_names_secrets_without_values() -> None:
    assert mask({"url": "https://hooks.slack.com/services/T/B/sekrit", "token": "x"}) == {
        "url": MASK,
        "token": MASK,
    }


# -- silences and inhibit rules -------------------------------------------------------------------


def test_a_silence_with_a_duration_starts_now() -> None:
    got = parse_silence({"matchers": ["host=web-1"], "duration": "2h", "comment": " disk swap "}, NOW)
    assert got == ((Matcher("host", "=", "web-1"),), NOW, NOW + 7200, "disk swap")


def test_a_silence_in_rfc3339() -> None:
    doc = {
        "matchers": [{"name": "alertname", "op": "=~", "value": "High.*"}],
        "starts_at": "2025-03-30T01:30:00+01:00",
        "ends_at": "2025-03-30T04:30:00+02:00",
        "comment": "DST night",
        "incident_id": "i-1",
    }
    _, starts, ends, _ = parse_silence(doc, 1_700_000_000.0)
    assert ends - starts == 7200.0  # the clocks went forward an hour in between


def test_an_inhibit_rule_and_the_default() -> None:
    got = parse_inhibit_rule({"name": "db down", "source": ["alertname=DbDown"], "equal": ["cluster"]})
    assert got == ("db down", (Matcher("alertname", "=", "DbDown"),), (), ("cluster",))
    (default,) = DEFAULT_INHIBIT_RULES
    assert default.source == (Matcher("alertname", "=", "HostSilent"),) and default.equal == ("host",)


def test_the_default_rule_names_the_default_packs_host_silent_rule() -> None:
    pack = Path(config.__file__).parents[1] / "rules" / "default_pack.yaml"
    rules = [r for g in yaml.safe_load(pack.read_text())["groups"] for r in g["rules"]]
    host_silent = next(r for r in rules if r["alert"] == "HostSilent")
    assert host_silent["kind"] == "absence" and host_silent["by"] == ["host"]
