"""The e-mail channel: one SMTP session per send (stdlib ``smtplib``, sync; the delivery worker calls
``send`` from its thread pool).

Settings (``CHANNEL_FIELDS["email"]``): ``host``, ``port``, ``security`` (``starttls``, the default,
port 587; ``tls``, implicit TLS, port 465; ``none``, port 25), ``username``, ``from``, ``to`` (a list
of addresses, or one string with commas); secret: ``password``.

Why the outbound policy applies here too: the SMTP host is a tenant's choice like a webhook URL, and
an SMTP dialogue against an internal service is still a connection we would make for them. So the
host is resolved once through ``deps.resolve``, ``deps.policy.choose`` picks an allowed address, and
the socket is opened to exactly that address; TLS (STARTTLS or implicit) is verified against the
host NAME the tenant gave (SNI and the certificate's name), never against the address.

Why AUTH is refused over a plain connection: the password would cross the network in clear text
(AUTH PLAIN/LOGIN are base64). With ``security: none`` and a username the channel fails at once,
unless the address connected to is loopback (a local relay on the same machine).

Outcomes, by the SMTP reply code (RFC 5321, section 4.2.1): 2xx/3xx → delivered; 4xx (421, 450,
451, 452, 454) → retry; 5xx (530, 535 authentication failed, 550, 553, 554) → failed. No reply at
all (refused connection, timeout, a dropped connection, a TLS handshake that failed) → retry, as
for HTTP channels. When some recipients are refused and others accepted, the mail was delivered:
the refused ones are named in ``error`` (retrying would send it twice to the others).

``Message-ID: <{delivery id}@infragent>`` is the idempotency key: a retry after a lost reply sends
the same id, and receivers and mail clients drop the duplicate. The password never appears in an
error: every reply text is scrubbed of it (and of its base64 forms) before it is kept.
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import ipaddress
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal, cast

from infragent.notify.channels.base import ChannelDeps
from infragent.notify.model import AttemptOutcome, ChannelConfig, DeliveryResult, Message
from infragent.notify.render import render
from infragent.outbound.policy import Address, embedded_ipv4

logger = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[Security, int] = {"starttls": 587, "tls": 465, "none": 25}
MAX_ERROR_CHARS = 300
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """A channel's settings once read; ``password`` is kept out of ``repr``."""

    host: str
    port: int
    security: Security
    username: str
    password: str
    sender: str
    to: tuple[str, ...]

    def __repr__(self) -> str:
        return f"EmailSettings(host={self.host!r}, port={self.port}, security={self.security!r})"


def read_settings(config: ChannelConfig) -> EmailSettings | str:
    """The settings of an e-mail channel, or what is wrong with them (a sentence)."""
    s, secrets = config.settings, config.secrets
    host = s.get("host")
    if not isinstance(host, str) or not host.strip():
        return "setting 'host' is missing"
    security = s.get("security") or "starttls"
    if security not in DEFAULT_PORTS:
        return "setting 'security' must be starttls, tls or none"
    port = s.get("port") or DEFAULT_PORTS[cast(Security, security)]
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return "setting 'port' must be a number from 1 to 65535"
    sender = s.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        return "setting 'from' must be an e-mail address"
    raw_to = s.get("to")
    to = raw_to.split(",") if isinstance(raw_to, str) else raw_to
    if not isinstance(to, list | tuple) or not all(isinstance(a, str) for a in to):
        return "setting 'to' must be a list of e-mail addresses"
    recipients = tuple(a.strip() for a in to if a.strip())
    if not recipients or not all("@" in a for a in recipients):
        return "setting 'to' must be a list of e-mail addresses"
    username = s.get("username") or ""
    password = secrets.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str):
        return "username and password must be text"
    return EmailSettings(
        host=host.strip(),
        port=port,
        security=cast(Security, security),
        username=username.strip(),
        password=password,
        sender=sender.strip(),
        to=recipients,
    )


def outcome_of(code: int) -> AttemptOutcome:
    """An SMTP reply code as an outcome (the module's table); an unknown code is retried."""
    if 200 <= code < 400:
        return "delivered"
    if 500 <= code < 600:
        return "failed"
    return "retry"


def build_mail(message: Message, sender: str, to: Sequence[str], now: float) -> EmailMessage:
    """The mail of a rendered message: multipart/alternative (text, then HTML), one id per delivery."""
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["Subject"] = _SPACES.sub(" ", message.title).strip() or "InfrAgent notification"
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(now, usegmt=True)
    mail["Message-ID"] = f"<{_ID_UNSAFE.sub('-', message.id)}@infragent>"
    # RFC 3834: no vacation or out-of-office replies to a machine's mail
    mail["Auto-Submitted"] = "auto-generated"
    if len(message.incidents) == 1:  # mail clients thread every notice of one incident together
        mail["References"] = f"<incident-{_ID_UNSAFE.sub('-', message.incidents[0].id)}@infragent>"
    mail.set_content(message.text or message.title)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


class _PinnedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` connecting to an address judged by the policy, while ``_host`` keeps the
    name (STARTTLS verifies the certificate against ``_host``)."""

    def __init__(self, host: str, address: str, local_hostname: str, timeout: float) -> None:
        self._address = address
        super().__init__(local_hostname=local_hostname, timeout=timeout)
        self._host = host  # what STARTTLS verifies; connect() itself does not set it

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib's hook for opening the connection (every Python 3 has it; typeshed leaves it out)
        return socket.create_connection((self._address, port), timeout, self.source_address)


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    """``smtplib.SMTP_SSL`` connecting to the judged address; the TLS handshake uses the name."""

    def __init__(
        self, host: str, address: str, local_hostname: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        self._address = address
        super().__init__(local_hostname=local_hostname, timeout=timeout, context=context)
        self._host = host  # what the handshake verifies; connect() itself does not set it

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = socket.create_connection((self._address, port), timeout, self.source_address)
        try:
            return self.context.wrap_socket(raw, server_hostname=self._host)
        except BaseException:
            raw.close()  # a failed handshake must not leave the socket open
            raise


class EmailChannel:
    """Sends a rendered message as one mail to every address of ``to``."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._config = config
        self._deps = deps
        self._settings = read_settings(config)

    def send(self, message: Message) -> DeliveryResult:
        settings = self._settings
        if isinstance(settings, str):
            return DeliveryResult("failed", error=f"e-mail channel: {settings}")
        now = self._deps.clock()
        if not message.text and not message.html:
            message = render(message, "email", now)
        try:
            mail = build_mail(message, settings.sender, settings.to, now)
        except (ValueError, TypeError) as exc:  # an address or header the e-mail library refuses
            return DeliveryResult("failed", error=f"e-mail channel: cannot build the mail: {exc}")
        address = self._choose(settings)
        if isinstance(address, DeliveryResult):
            return address
        if settings.username and settings.security == "none" and not embedded_ipv4(address).is_loopback:
            error = (
                f"refusing to send the password to {settings.host} over an unencrypted connection "
                "(security 'none'); use starttls or tls"
            )
            return DeliveryResult("failed", error=error)
        return self._session(settings, str(address), mail)

    def _choose(self, settings: EmailSettings) -> Address | DeliveryResult:
        """The address to connect to: resolved once, judged by the outbound policy."""
        host = settings.host
        addresses: Sequence[Address | str]
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                addresses = self._deps.resolve(host, settings.port)
            except OSError as exc:
                return DeliveryResult("retry", error=f"cannot resolve SMTP host {host!r}: {exc}")
        if not addresses:
            return DeliveryResult("retry", error=f"cannot resolve SMTP host {host!r}: no address")
        verdict = self._deps.policy.choose(addresses)
        if not verdict.allowed:
            logger.warning("e-mail to %s:%d refused: %s", host, settings.port, verdict.reason)
            error = f"refused by the outbound policy, nothing sent to {host}: {verdict.reason}"
            return DeliveryResult("failed", error=error)
        return verdict.address

    def _session(self, settings: EmailSettings, address: str, mail: EmailMessage) -> DeliveryResult:
        """One SMTP session: connect, (STARTTLS), (AUTH), send; the reply codes decide."""
        context = self._deps.tls_context or ssl.create_default_context()
        timeout = self._deps.timeout_s
        helo = socket.gethostname() or "infragent"  # not getfqdn(): a DNS lookup per mail
        client: smtplib.SMTP
        if settings.security == "tls":
            client = _PinnedSMTPSSL(settings.host, address, helo, timeout, context)
        else:
            client = _PinnedSMTP(settings.host, address, helo, timeout)
        try:
            code, reply = client.connect(settings.host, settings.port)
            if code != 220:
                return self._reply(settings, "connect", code, reply)
            client.ehlo()
            if settings.security == "starttls":
                if not client.has_extn("starttls"):
                    error = f"{settings.host} does not offer STARTTLS (security 'starttls'); nothing sent"
                    return DeliveryResult("failed", error=error)
                client.starttls(context=context)
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.password)
            refused = client.send_message(mail, settings.sender, list(settings.to))
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()  # the mail was accepted; a lost goodbye changes nothing
            if refused:
                named = ", ".join(f"{addr} ({code})" for addr, (code, _text) in sorted(refused.items()))
                return DeliveryResult("delivered", status_code=250, error=f"some recipients refused: {named}")
            return DeliveryResult("delivered", status_code=250)
        except smtplib.SMTPRecipientsRefused as exc:
            return self._refused(settings, exc.recipients)
        except smtplib.SMTPResponseException as exc:
            return self._reply(settings, _stage(exc), exc.smtp_code, exc.smtp_error)
        except ssl.SSLError as exc:
            error = f"TLS with {settings.host} failed: {exc.reason or exc}"
            return DeliveryResult("retry", error=self._clean(settings, error))
        except smtplib.SMTPServerDisconnected as exc:
            error = f"{settings.host} closed the connection: {exc or 'no reason given'}"
            return DeliveryResult("retry", error=self._clean(settings, error))
        except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism both sides speak
            return DeliveryResult("failed", error=self._clean(settings, f"{settings.host}: {exc}"))
        except OSError as exc:  # no reply: refused, timed out, reset
            error = f"could not talk to {settings.host}:{settings.port}: {exc or type(exc).__name__}"
            return DeliveryResult("retry", error=self._clean(settings, error))
        except Exception as exc:  # a send returns a result, never raises: tried again
            logger.exception("e-mail to %s:%d failed unexpectedly", settings.host, settings.port)
            error = f"unexpected {type(exc).__name__} talking to {settings.host}"
            return DeliveryResult("retry", error=error)
        finally:
            client.close()

    def _reply(self, settings: EmailSettings, stage: str, code: int, text: Any) -> DeliveryResult:
        said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        error = f"SMTP {code} from {settings.host} at {stage}: {said}"
        return DeliveryResult(outcome_of(code), status_code=code, error=self._clean(settings, error))

    def _refused(self, settings: EmailSettings, recipients: dict[str, tuple[int, bytes]]) -> DeliveryResult:
        """Every recipient refused: retry when each refusal was temporary, else failed."""
        codes = [code for code, _text in recipients.values()]
        outcome: AttemptOutcome = "retry" if codes and all(400 <= c < 500 for c in codes) else "failed"
        first_code, first_text = next(iter(recipients.values()))
        said = first_text.decode("utf-8", "replace")
        error = f"SMTP {first_code} from {settings.host}: every recipient refused: {said}"
        return DeliveryResult(outcome, status_code=first_code, error=self._clean(settings, error))

    def _clean(self, settings: EmailSettings, text: str) -> str:
        """``text`` on one line, capped, without the password in any spelling the dialogue used."""
        text = _SPACES.sub(" ", text).strip()
        secret = settings.password
        if secret:
            user = settings.username.encode()
            spellings = {
                secret,
                base64.b64encode(secret.encode()).decode(),
                base64.b64encode(b"\0" + user + b"\0" + secret.encode()).decode(),
            }
            for spelling in sorted(spellings, key=len, reverse=True):
                text = text.replace(spelling, "[REDACTED]")
        return text[:MAX_ERROR_CHARS]


def _stage(exc: smtplib.SMTPResponseException) -> str:
    """Which step an SMTP reply answered, for the person reading the error."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "AUTH"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "MAIL FROM"
    if isinstance(exc, smtplib.SMTPDataError):
        return "DATA"
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPHeloError):
        return "greeting"
    return "the dialogue"
