"""The pipeline's small pure parts, table-tested: the failpoint switch (test-only, but a typo must
fail loudly), the quarantine of failing changes, a missing channel's key, a value as a message
shows it."""

from __future__ import annotations

import math

import pytest

from infragent.config import load_settings
from infragent.notify.failpoints import Failpoints
from infragent.notify.fanout import missing_channel_key
from infragent.notify.pipeline import Quarantine
from infragent.notify.snapshot import format_value, responder_line


def test_failpoints_parse_the_known_points_and_refuse_anything_else() -> None:
    assert not Failpoints.from_environ({})
    assert not Failpoints.parse(" , ")
    armed = Failpoints.parse("notify.before_send=kill, notify.after_send=kill")
    assert armed
    for bad in ("notify.before_sned=kill", "notify.before_send=crash", "notify.before_send"):
        with pytest.raises(ValueError, match="INFRAGENT_FAILPOINTS"):
            Failpoints.parse(bad)


def test_the_failpoints_variable_is_not_taken_for_an_unknown_setting() -> None:
    """The server refuses unknown ``INFRAGENT_*`` variables; the e2e tests set this one."""
    settings = load_settings(environ={"INFRAGENT_FAILPOINTS": "notify.before_send=kill"})
    assert settings.notify_enabled


def test_an_unarmed_failpoint_is_passed_through() -> None:
    Failpoints.parse("notify.after_send=kill").hit("notify.before_send")  # this process lives on


def test_a_failing_change_is_set_aside_for_a_doubling_while_and_back_once_done() -> None:
    q = Quarantine()
    q.failed(7, 100.0)
    assert q.skipped(100.5) == [7]
    assert q.skipped(101.0) == []  # 1 s
    q.failed(7, 101.0)
    assert q.skipped(102.9) == [7] and q.skipped(103.0) == []  # 2 s
    for _ in range(20):
        q.failed(7, 200.0)
    assert q.skipped(259.9) == [7] and q.skipped(260.0) == []  # at most a minute
    q.failed(7, 300.0)
    q.done(7)
    assert q.skipped(300.0) == []


def test_a_missing_channel_is_keyed_by_its_name_within_the_column() -> None:
    assert missing_channel_key("ghost") == "ghost"
    long_a, long_b = "x" * 60 + "a", "x" * 60 + "b"
    assert len(missing_channel_key(long_a)) == 36
    assert missing_channel_key(long_a) != missing_channel_key(long_b)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (95.25, "95.25"),
        (3, "3"),
        (1.23456789e9, "1.23457e+09"),
        (math.nan, None),
        (True, None),
        ("9", None),
        (None, None),
    ],
)
def test_a_value_is_shown_with_six_significant_digits(value: object, shown: str | None) -> None:
    assert format_value(value) == shown


def test_the_responder_line_names_the_action_target_and_outcome() -> None:
    decision = {"action": "restart_service", "target": "web-1", "command_id": "c1"}
    assert responder_line(None, None) is None
    assert responder_line({"action": ""}, None) is None
    assert responder_line(decision, None) == "restart_service on web-1"
    assert (
        responder_line(decision, {"command_id": "c1", "status": "done", "result": "ok"})
        == "restart_service on web-1: ok"
    )
    assert responder_line(decision, {"command_id": "c2", "status": "expired"}) == "restart_service on web-1"
