"""The e-mail channel against a real SMTP server (``support.smtp_sink``): the mail's content, STARTTLS
and implicit TLS verified against the host name, AUTH, the reply codes' outcomes, a server that is
down, and the outbound policy."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.email import EmailChannel
from infragent.notify.config import parse_channel
from infragent.notify.model import ChannelConfig, DeliveryResult, IncidentSummary, Message
from infragent.notify.render import render
from infragent.outbound.policy import OutboundPolicy
from support.servers import closed_port
from support.smtp_sink import SmtpSink, TlsFiles, make_certificates

NOW = 1_750_000_000.0
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
PASSWORD = "correct-horse-battery-staple"
NAMES = {"mail.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "meta.test": ["169.254.169.254"]}


def resolver(host: str, port: int) -> Sequence[str]:
    if host not in NAMES:
        raise OSError(f"no such host {host!r}")
    return NAMES[host]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_certificates(tmp_path_factory.mktemp("smtp-tls"), ("mail.test",))


@pytest.fixture
def make_deps() -> Iterator[Callable[..., ChannelDeps]]:
    clients: list[httpx.Client] = []

    def make(policy: OutboundPolicy = LOOPBACK, tls: TlsFiles | None = None) -> ChannelDeps:
        clients.append(httpx.Client())
        return ChannelDeps(
            http=clients[-1],
            policy=policy,
            resolve=resolver,
            timeout_s=5.0,
            clock=lambda: NOW,
            tls_context=tls.client_context() if tls else None,
        )

    yield make
    for client in clients:
        client.close()


def _config(port: int, *, host: str = "127.0.0.1", security: str = "none", **settings: Any) -> ChannelConfig:
    password = settings.pop("password", None)
    values = {"host": host, "port": port, "security": security, "from": "infragent@example.com",
              "to": ["oncall@example.com", "lead@example.com"], **settings}  # fmt: skip
    return ChannelConfig(
        id="ch-1",
        client_id="c-1",
        name="mail",
        kind="email",
        settings=values,
        secrets={"password": password} if password else {},
    )


def _message(rendered: bool = True) -> Message:
    incident = IncidentSummary(
        id="inc-42",
        title="Disk almost full",
        severity="critical",
        status="open",
        fingerprint="fp",
        labels={"host": "web-1", "service": "<nginx>"},
        opened_at=NOW - 720.0,
        value="97.5 %",
        responder="clean_tmp on web-1: running",
        url="https://infragent.example.com/incidents/inc-42",
    )
    message = Message(id="dlv-7", client_id="c-1", kind="firing", incidents=(incident,), created_at=NOW)
    return render(message, "email", NOW) if rendered else message


def _send(config: ChannelConfig, deps: ChannelDeps, message: Message | None = None) -> DeliveryResult:
    return EmailChannel(config, deps).send(message or _message())


def test_a_mail_has_both_parts_subject_message_id_and_recipients(
    make_deps: Callable[..., ChannelDeps],
) -> None:
    with SmtpSink() as sink:
        result = build_channel(_config(sink.port), make_deps()).send(_message())
        assert result == DeliveryResult("delivered", status_code=250)
        [mail] = sink.messages
    assert mail.mail_from == "infragent@example.com"
    assert mail.rcpt_tos == ("oncall@example.com", "lead@example.com")
    m = mail.message
    assert m["Subject"] == "[FIRING] critical: Disk almost full"
    assert m["Message-ID"] == "<dlv-7@infragent>"
    assert m["To"] == "oncall@example.com, lead@example.com"
    assert m["From"] == "infragent@example.com"
    assert m["Date"].datetime.timestamp() == NOW
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["References"] == "<incident-inc-42@infragent>"
    assert m.get_content_type() == "multipart/alternative"
    plain, html = (part for part in m.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert "where: host=web-1, service=<nginx>" in plain.get_content()
    assert "https://infragent.example.com/incidents/inc-42" in plain.get_content()
    assert html.get_content_type() == "text/html"
    assert "service=&lt;nginx&gt;" in html.get_content()
    assert '<a href="https://infragent.example.com/incidents/inc-42">' in html.get_content()
    assert not mail.tls and mail.login is None


def test_an_unrendered_message_is_rendered_before_sending(make_deps: Callable[..., ChannelDeps]) -> None:
    with SmtpSink() as sink:
        assert _send(_config(sink.port), make_deps(), _message(rendered=False)).outcome == "delivered"
        [mail] = sink.messages
    assert mail.message["Subject"] == "[FIRING] critical: Disk almost full"
    assert mail.message.get_content_type() == "multipart/alternative"


def test_starttls_verified_against_the_host_name_with_auth(
    make_deps: Callable[..., ChannelDeps], certs: TlsFiles
) -> None:
    config = _config(0, host="mail.test", security="starttls", username="bot", password=PASSWORD)
    with SmtpSink(mode="starttls", tls=certs, users={"bot": PASSWORD}) as sink:
        config.settings["port"] = sink.port
        assert _send(config, make_deps(tls=certs)).outcome == "delivered"
        [mail] = sink.messages
    assert mail.tls and mail.login == "bot"


def test_a_certificate_for_another_name_or_an_unknown_ca_is_not_accepted(
    make_deps: Callable[..., ChannelDeps], certs: TlsFiles
) -> None:
    with SmtpSink(mode="starttls", tls=certs) as sink:
        # the same address, another name: the check is against the name, not the address
        wrong_name = _send(_config(sink.port, host="other.test", security="starttls"), make_deps(tls=certs))
        assert wrong_name.outcome == "retry"
        assert "TLS with other.test failed" in (wrong_name.error or "")
        # the system's CAs do not know the test CA
        unknown_ca = _send(_config(sink.port, host="mail.test", security="starttls"), make_deps())
        assert unknown_ca.outcome == "retry"
        assert "CERTIFICATE_VERIFY_FAILED" in (unknown_ca.error or "")
        assert sink.messages == []


def test_implicit_tls(make_deps: Callable[..., ChannelDeps], certs: TlsFiles) -> None:
    with SmtpSink(mode="tls", tls=certs, users={"bot": PASSWORD}) as sink:
        config = _config(sink.port, host="mail.test", security="tls", username="bot", password=PASSWORD)
        untrusted = _send(config, make_deps())  # the system's CAs do not know the test CA
        assert untrusted.outcome == "retry" and "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or "")
        assert sink.messages == []
        assert _send(config, make_deps(tls=certs)).outcome == "delivered"
        [mail] = sink.messages
    assert mail.tls and mail.login == "bot"


def test_a_server_without_starttls_is_refused_when_starttls_is_asked(
    make_deps: Callable[..., ChannelDeps],
) -> None:
    with SmtpSink() as sink:
        result = _send(_config(sink.port, host="mail.test", security="starttls"), make_deps())
        assert result.outcome == "failed"
        assert result.error == "mail.test does not offer STARTTLS (security 'starttls'); nothing sent"
        assert sink.messages == []


def test_bad_credentials_are_final_and_the_password_never_shows(
    make_deps: Callable[..., ChannelDeps], certs: TlsFiles
) -> None:
    config = _config(0, host="mail.test", security="starttls", username="bot", password=PASSWORD)
    with SmtpSink(mode="starttls", tls=certs, users={"bot": "another password"}) as sink:
        config.settings["port"] = sink.port
        result = _send(config, make_deps(tls=certs))
        assert sink.messages == []
        assert sink.auth_attempts and set(sink.auth_attempts) == {"bot"}  # smtplib tries PLAIN, then LOGIN
    assert result.outcome == "failed"
    assert result.status_code == 535
    assert (result.error or "").startswith("SMTP 535 from mail.test at AUTH:")
    plain = base64.b64encode(PASSWORD.encode()).decode()
    auth_plain = base64.b64encode(b"\0bot\0" + PASSWORD.encode()).decode()
    for spelling in (PASSWORD, plain, auth_plain):
        assert spelling not in repr(result)


def test_a_password_over_a_plain_connection_goes_only_to_loopback(
    make_deps: Callable[..., ChannelDeps],
) -> None:
    with SmtpSink(users={"bot": PASSWORD}) as sink:
        local = _config(sink.port, username="bot", password=PASSWORD)
        assert _send(local, make_deps()).outcome == "delivered"
        assert sink.messages[0].login == "bot"
    public = _config(25, host="203.0.113.9", username="bot", password=PASSWORD)
    allow_all = OutboundPolicy.from_cidrs(["203.0.113.0/24"])
    result = _send(public, make_deps(policy=allow_all))
    assert result.outcome == "failed"
    assert "over an unencrypted connection" in (result.error or "")
    assert PASSWORD not in repr(result)


@pytest.mark.parametrize(("code", "at", "outcome"), [(451, "RCPT", "retry"), (452, "RCPT", "retry"),
                         (421, "MAIL", "retry"), (451, "DATA", "retry"), (550, "RCPT", "failed"),
                         (553, "MAIL", "failed"), (554, "DATA", "failed")])  # fmt: skip
def test_reply_codes_decide_the_outcome(
    make_deps: Callable[..., ChannelDeps], code: int, at: Any, outcome: str
) -> None:
    config = _config(0, to=["oncall@example.com"])
    with SmtpSink() as sink:
        config.settings["port"] = sink.port
        sink.fail_next(1, code, at=at)
        result = _send(config, make_deps())
        assert result.outcome == outcome
        assert result.status_code == code
        assert (result.error or "").startswith(f"SMTP {code} from 127.0.0.1")
        assert sink.messages == []
        # the failure was the server's word for that moment: the next send goes through
        assert _send(config, make_deps()).outcome == "delivered"
        assert len(sink.messages) == 1


def test_one_recipient_refused_of_two_is_still_delivered(make_deps: Callable[..., ChannelDeps]) -> None:
    with SmtpSink() as sink:
        sink.fail_next(1, 550, at="RCPT")
        result = _send(_config(sink.port), make_deps())
        [mail] = sink.messages
    assert result.outcome == "delivered"
    assert result.error == "some recipients refused: oncall@example.com (550)"
    assert mail.rcpt_tos == ("lead@example.com",)


def test_a_server_that_is_down_is_retried(make_deps: Callable[..., ChannelDeps]) -> None:
    result = _send(_config(closed_port()), make_deps())
    assert result.outcome == "retry"
    assert (result.error or "").startswith("could not talk to 127.0.0.1:")


def test_a_host_that_does_not_resolve_is_retried(make_deps: Callable[..., ChannelDeps]) -> None:
    result = _send(_config(25, host="nowhere.test"), make_deps())
    assert result.outcome == "retry"
    assert "cannot resolve SMTP host 'nowhere.test'" in (result.error or "")


def test_the_outbound_policy_refuses_loopback_and_metadata(make_deps: Callable[..., ChannelDeps]) -> None:
    with SmtpSink() as sink:
        by_default = _send(_config(sink.port, host="mail.test"), make_deps(policy=OutboundPolicy()))
        assert by_default.outcome == "failed"
        assert "loopback address, refused unless listed in webhook_allowed_networks" in (
            by_default.error or ""
        )
        metadata = _send(_config(sink.port, host="meta.test"), make_deps(policy=LOOPBACK))
        assert metadata.outcome == "failed"
        assert "link-local or cloud-metadata address" in (metadata.error or "")
        assert sink.messages == []


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"host": ""}, "setting 'host' is missing"),
        ({"security": "ssl"}, "setting 'security' must be starttls, tls or none"),
        ({"port": 70000}, "setting 'port' must be a number from 1 to 65535"),
        ({"from": "nobody"}, "setting 'from' must be an e-mail address"),
        ({"to": []}, "setting 'to' must be a list of e-mail addresses"),
        ({"to": [1]}, "setting 'to' must be a list of e-mail addresses"),
    ],
)
def test_bad_settings_fail_without_connecting(
    make_deps: Callable[..., ChannelDeps], settings: dict[str, Any], error: str
) -> None:
    config = _config(closed_port())
    config.settings.update(settings)
    result = _send(config, make_deps())
    assert result == DeliveryResult("failed", error=f"e-mail channel: {error}")


def test_to_may_be_one_string_with_commas(make_deps: Callable[..., ChannelDeps]) -> None:
    with SmtpSink() as sink:
        config = _config(sink.port, to="a@example.com, b@example.com")
        assert _send(config, make_deps()).outcome == "delivered"
        assert sink.messages[0].rcpt_tos == ("a@example.com", "b@example.com")


def test_settings_as_the_api_validates_them_are_what_the_channel_reads(
    make_deps: Callable[..., ChannelDeps],
) -> None:
    with SmtpSink(users={"bot": PASSWORD}) as sink:
        given = {"host": "127.0.0.1", "port": sink.port, "security": "none", "username": "bot",
                 "from": "infragent@example.com", "to": ["oncall@example.com"]}  # fmt: skip
        settings, secrets = parse_channel("email", given, {"password": PASSWORD})
        config = ChannelConfig(
            id="ch-2", client_id="c-1", name="m", kind="email", settings=settings, secrets=secrets
        )
        assert build_channel(config, make_deps()).send(_message()).outcome == "delivered"
        assert sink.messages[0].login == "bot"


def test_non_ascii_subjects_and_bodies_arrive_intact(make_deps: Callable[..., ChannelDeps]) -> None:
    incident = dataclasses.replace(
        _message(rendered=False).incidents[0], title="Disque presque plein — /var é"
    )
    message = render(dataclasses.replace(_message(rendered=False), incidents=(incident,)), "email", NOW)
    with SmtpSink() as sink:
        assert _send(_config(sink.port), make_deps(), message).outcome == "delivered"
        [mail] = sink.messages
    assert mail.message["Subject"] == "[FIRING] critical: Disque presque plein — /var é"
    plain = next(iter(mail.message.iter_parts()))
    assert "Disque presque plein — /var é" in plain.get_content()
