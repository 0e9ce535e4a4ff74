"""The default templates: every channel kind by notification kind says what, where, since when, the
value, the link and what the responder does; each format has its own markup and escaping; the
caps hold."""

from __future__ import annotations

import dataclasses

import pytest

from infragent.notify import render as r
from infragent.notify.model import CHANNEL_KINDS, NOTIFICATION_KINDS, ChannelKind, IncidentSummary, Message
from infragent.notify.templates import duration, iso_utc, relative, where

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z


def _incident(n: int = 1, **changes: object) -> IncidentSummary:
    base = IncidentSummary(
        id=f"inc-{n}",
        title=f"Disk almost full #{n}",
        severity="critical",
        status="open",
        fingerprint=f"fp-{n}",
        labels={"host": f"web-{n}", "service": "nginx", "mount": "/var"},
        opened_at=NOW - 720.0,
        value="97.5 %",
        responder="clean_tmp on web-1: running",
        url=f"https://infragent.example.com/incidents/inc-{n}",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _message(
    kind: str = "firing", incidents: tuple[IncidentSummary, ...] | None = None, **kw: object
) -> Message:
    values: dict[str, object] = {
        "id": "dlv-1",
        "client_id": "c-1",
        "kind": kind,
        "incidents": incidents if incidents is not None else (_incident(),),
        "created_at": NOW,
    }
    values.update(kw)
    return Message(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("channel", CHANNEL_KINDS)
@pytest.mark.parametrize("notification", NOTIFICATION_KINDS)
def test_every_default_renders_what_where_since_value_link_responder(
    channel: ChannelKind, notification: str
) -> None:
    message = r.sample_message(channel, NOW, notification)  # type: ignore[arg-type]
    assert message.title and "\n" not in message.title and len(message.title) <= r.TITLE_CAP
    assert "template error" not in message.text
    parts = [message.text, message.html] if channel == "email" else [message.text]
    for body in parts:
        assert "Disk almost full" in body  # what
        assert "critical" in body
        assert "host=web-1" in body  # where
        assert "2025-06-15T14:54:40Z" in body  # since when
        assert "97.5 %" in body  # current value
        assert "https://infragent.example.com/incidents/inc-sample-1" in body  # link
        assert "clean" in body and "on web-1: running" in body  # what the responder does
    if notification == "resolved":
        assert "lasted 11 min" in message.text
    else:
        assert "for 12 min" in message.text
    assert (message.html != "") == (channel == "email")


def test_each_notification_kind_reads_naturally() -> None:
    text = {n: r.sample_message("webhook", NOW, n) for n in NOTIFICATION_KINDS}
    assert text["firing"].title == "[FIRING:2] host=web-1"
    assert text["firing"].text.startswith("2 firing (host=web-1)")
    assert text["resolved"].title == "[RESOLVED:2] host=web-1"
    assert text["resolved"].text.startswith("Resolved: 2 incidents")
    assert text["escalated"].title == "[ESCALATED] critical: Disk almost full"
    assert "handed this incident to people" in text["escalated"].text
    assert text["acknowledged"].title == "[ACKNOWLEDGED] Disk almost full (by alice@example.com)"
    assert text["acknowledged"].text.startswith("Acknowledged by alice@example.com.")
    assert text["escalation"].title == "[NOT ACKNOWLEDGED] Disk almost full (step 2)"
    assert text["escalation"].text.startswith("Not acknowledged after 15 min: escalation step 2.")
    approval = text["approval"]
    assert approval.title == "[APPROVAL NEEDED] restart_service on web-1: Disk almost full"
    assert "asks to run restart_service on web-1" in approval.text
    assert "parameters: service=nginx" in approval.text
    assert "expires: 2025-06-15T15:16:40Z (in 10 min)" in approval.text
    assert "approve: https://infragent.example.com/incidents/inc-sample-1#approval" in approval.text
    assert text["test"].title == "[TEST] InfrAgent test notification"
    assert "if you read this, the channel works" in text["test"].text


def test_single_incident_titles_carry_severity_and_group_titles_the_count() -> None:
    single = r.render(_message(), "webhook", NOW)
    assert single.title == "[FIRING] critical: Disk almost full #1"
    group = r.render(_message(incidents=(_incident(1), _incident(2)), firing_count=2), "webhook", NOW)
    assert group.title == "[FIRING:2] Disk almost full #1 and 1 more"


def test_a_group_lists_ten_incidents_then_counts_the_rest() -> None:
    incidents = tuple(_incident(n) for n in range(1, 14))
    message = r.render(_message(incidents=incidents, firing_count=13), "email", NOW)
    assert "Disk almost full #10 " in message.text
    assert "#11" not in message.text
    assert message.text.endswith("and 3 more")
    assert "and 3 more" in message.html
    # the group may hold more than the message lists
    bigger = r.render(_message(incidents=incidents[:2], firing_count=40, resolved_count=2), "webhook", NOW)
    assert bigger.text.startswith("40 firing, 2 resolved")
    assert bigger.text.endswith("and 40 more")


def test_each_chat_format_has_its_markup() -> None:
    msg = _message()
    slack = r.render(msg, "slack", NOW).text
    assert "*Disk almost full #1*" in slack
    assert "<https://infragent.example.com/incidents/inc-1|open the incident>" in slack
    assert r.render(msg, "slack_bot", NOW).text == slack
    discord = r.render(msg, "discord", NOW).text
    assert "**Disk almost full \\#1**" in discord
    assert "[open the incident](https://infragent.example.com/incidents/inc-1)" in discord
    teams = r.render(msg, "teams", NOW).text
    assert "**Disk almost full #1**" in teams
    plain = r.render(msg, "pagerduty", NOW).text
    assert "*" not in plain
    assert "link: https://infragent.example.com/incidents/inc-1" in plain


def test_label_values_cannot_inject_markup() -> None:
    hostile = _incident(labels={"host": "<script>alert(1)</script>", "service": "<!channel> @everyone"})
    msg = _message(incidents=(hostile,))
    html = r.render(msg, "email", NOW).html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    slack = r.render(msg, "slack", NOW).text
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
    discord = r.render(msg, "discord", NOW).text
    assert "@everyone" not in discord and "@\u200beveryone" in discord
    # links stay links
    assert "(https://infragent.example.com/incidents/inc-1)" in discord


def test_the_title_is_one_line_of_at_most_250_characters() -> None:
    long = _incident(title="line one\nline two " + "x" * 400)
    message = r.render(_message(incidents=(long,)), "email", NOW)
    assert "\n" not in message.title
    assert len(message.title) == r.TITLE_CAP
    assert message.title.startswith("[FIRING] critical: line one line two x")
    assert message.title.endswith("…")


def test_chat_bodies_are_capped_and_email_is_not() -> None:
    incidents = tuple(_incident(n, responder="r" * 600) for n in range(1, 11))
    message = _message(incidents=incidents, firing_count=10)
    for chat in ("slack", "slack_bot", "discord", "teams"):
        text = r.render(message, chat, NOW).text  # type: ignore[arg-type]
        assert len(text) <= r.CHAT_TEXT_CAP
        assert text.endswith("\n…")
    assert len(r.render(message, "email", NOW).text) > r.CHAT_TEXT_CAP


def test_an_incident_without_value_or_responder_omits_those_lines() -> None:
    bare = _incident(value=None, responder=None, url="")
    text = r.render(_message(incidents=(bare,)), "webhook", NOW).text
    assert "value:" not in text and "responder:" not in text and "link:" not in text
    assert "where: host=web-1, service=nginx" in text


def test_a_default_that_fails_on_odd_data_still_sends_a_plain_summary() -> None:
    message = _message("escalation", detail={"after_s": "soon", "step": 1})
    out = r.render(message, "slack", NOW)
    assert out.title == "[ESCALATION] Disk almost full #1"
    assert "Disk almost full #1 (critical, open) host=web-1, service=nginx" in out.text
    assert out.text.splitlines()[-1].startswith("(template error: default template:")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (59.4, "59 s"),
        (60, "1 min"),
        (720, "12 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (86_400, "1 d"),
        (97_200, "1 d 3 h"),
        (-5, "0 s"),
        (None, "unknown"),
    ],
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_times_are_utc_iso_and_relative_to_now() -> None:
    assert iso_utc(NOW) == "2025-06-15T15:06:40Z"
    assert relative(NOW - 720, NOW) == "12 min ago"
    assert relative(NOW + 300, NOW) == "in 5 min"
    assert where({"pod": "p", "host": "h", "zzz": "z"}) == "host=h, pod=p"
    assert where({"alertname": "x"}) == "alertname=x"
