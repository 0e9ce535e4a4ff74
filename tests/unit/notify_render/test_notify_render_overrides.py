"""Route template overrides: used when they render, the default plus one error line when they do
not, refused by ``validate_template`` with a line number, and kept inside the sandbox."""

from __future__ import annotations

import dataclasses

import pytest

from infragent.notify import render as r
from infragent.notify.model import IncidentSummary, Message

NOW = 1_750_000_000.0


def _message(template: dict[str, str], kind: str = "firing", **kw: object) -> Message:
    incident = IncidentSummary(
        id="inc-1",
        title="Disk almost full",
        severity="critical",
        status="open",
        fingerprint="fp",
        labels={"host": "web-1", "env": "prod"},
        opened_at=NOW - 720.0,
        value="97.5 %",
        responder="clean_tmp: running",
        url="https://infragent.example.com/incidents/inc-1",
    )
    return Message(
        id="dlv-1",
        client_id="c-1",
        kind=kind,  # type: ignore[arg-type]
        incidents=(incident,),
        created_at=NOW,
        template=template,
        **kw,  # type: ignore[arg-type]
    )


def test_an_override_replaces_each_part_it_names() -> None:
    template = {
        "title": "{{ title }} [{{ incident.labels.env }}]",
        "text": "{{ incident.title }} on {{ incident.labels.host }}"
        " for {{ (now - incident.opened_at) | duration }}",
        "html": "<b>{{ incident.title }}</b> {{ incident.opened_at | ago }}",
    }
    out = r.render(_message(template), "email", NOW)
    assert out.title == "[FIRING] critical: Disk almost full [prod]"
    assert out.text == "Disk almost full on web-1 for 12 min"
    assert out.html == "<b>Disk almost full</b> 12 min ago"


def test_a_part_not_overridden_keeps_its_default() -> None:
    out = r.render(_message({"title": "custom {{ incident.severity }}"}), "webhook", NOW)
    assert out.title == "custom critical"
    assert out.text.startswith("1 firing")
    assert "where: host=web-1\n" in out.text


def test_a_text_override_on_email_gives_the_html_part_too() -> None:
    out = r.render(_message({"text": "<{{ incident.title }}> & more"}), "email", NOW)
    assert out.text == "<Disk almost full> & more"
    assert "&lt;Disk almost full&gt; &amp; more" in out.html
    assert out.html.startswith("<pre")


def test_a_failing_override_falls_back_to_the_default_with_one_error_line() -> None:
    default = r.render(_message({}), "slack", NOW)
    out = r.render(_message({"text": "first line\n{{ incident.nope }}"}), "slack", NOW)
    assert out.title == default.title
    assert out.text.startswith(default.text)
    extra = out.text[len(default.text) :].strip("\n")
    assert "\n" not in extra
    assert extra.startswith("(template error: text: line 2:")
    assert "nope" in extra


def test_a_failing_title_override_keeps_the_default_title_and_says_so_in_the_body() -> None:
    out = r.render(_message({"title": "{% for %}"}), "email", NOW)
    assert out.title == "[FIRING] critical: Disk almost full"
    assert out.text.splitlines()[-1].startswith("(template error: title: line 1:")
    assert "(template error: title: line 1:" in out.html


def test_the_error_line_survives_the_chat_cap() -> None:
    incidents = tuple(
        dataclasses.replace(_message({}).incidents[0], id=f"i{n}", responder="x" * 600) for n in range(10)
    )
    message = dataclasses.replace(
        _message({"html": "{{ nope }}", "title": "{{ 1 / 0 }}"}), incidents=incidents
    )
    out = r.render(message, "discord", NOW)
    assert len(out.text) <= r.CHAT_TEXT_CAP
    assert out.text.splitlines()[-1].startswith("(template error: title: line 1: division by zero")


def test_the_sandbox_blocks_escapes_from_the_data() -> None:
    escapes = [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ incident.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(incident) }}",
        "{{ incidents.append(1) }}",
        "{{ 'x' * 1000000 }}",
        "{{ 10 ** 100000000 }}",
    ]
    for source in escapes:
        error = r.validate_template(source)
        assert error is not None, source
        assert error.startswith("line 1:"), error
        out = r.render(_message({"text": source}), "webhook", NOW)
        assert out.text.startswith("1 firing"), source
        assert out.text.splitlines()[-1].startswith("(template error: text: line 1:"), source
    assert "unsafe" in (r.validate_template("{{ ''.__class__ }}") or "")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ incident.title }} {{ (now - incident.opened_at) | duration }}", None),
        ("{% if detail.step is defined %}step {{ detail.step }}{% endif %}", None),
        ("{{ detail.get('step', '-') }} {{ title }} {{ bold('x') }} {{ link(incident.url, 'go') }}", None),
        ("one\ntwo\n{% if %}", "line 3:"),
        ("ok\n{{ incident.tilte }}", "line 2:"),
        ("{{ detail.step }}", "line 1:"),  # only escalation messages carry a step: guard it
        ("{{ nothing }}", "line 1: 'nothing' is undefined"),
    ],
)
def test_validate_template(source: str, expected: str | None) -> None:
    error = r.validate_template(source)
    if expected is None:
        assert error is None
    else:
        assert error is not None and error.startswith(expected), error


def test_validate_template_refuses_a_huge_source() -> None:
    assert r.validate_template("x" * (r.MAX_TEMPLATE_CHARS + 1)) == (
        f"template is longer than {r.MAX_TEMPLATE_CHARS} characters"
    )


def test_preview_renders_the_sample_with_a_template() -> None:
    out = r.preview("slack", {"title": "{{ total }} on {{ group_labels.host }}"}, NOW)
    assert out.title == "2 on web-1"
    assert out.kind == "firing"
    assert "*Disk almost full*" in out.text
    approval = r.preview("email", {}, NOW, "approval")
    assert approval.title.startswith("[APPROVAL NEEDED]")
    assert "Approve or deny" in approval.html


def test_rendering_twice_gives_the_same_message() -> None:
    message = _message({"text": "{{ incident.title }}"})
    once = r.render(message, "teams", NOW)
    assert r.render(once, "teams", NOW) == once
