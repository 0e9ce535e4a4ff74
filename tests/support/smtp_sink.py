"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 that keeps every mail it accepts.

Why a real server: the e-mail channel's job is the SMTP dialogue (greeting, EHLO, STARTTLS, AUTH,
MAIL/RCPT/DATA reply codes), so a test must cross a socket and a TLS handshake to mean anything.

    with SmtpSink() as sink:                          # plain SMTP
    with SmtpSink(mode="starttls", tls=certs) as sink:    # STARTTLS offered (certs: make_certificates)
    with SmtpSink(mode="tls", tls=certs) as sink:         # implicit TLS (port 465 style)
    with SmtpSink(users={"bot": "s3cret"}) as sink:       # AUTH PLAIN/LOGIN with these credentials
        ...send...
        sink.messages[0].message["Subject"]          # parsed (email.policy.default)
        sink.fail_next(2, 451)                        # the next 2 RCPT TO get "451 …"
        sink.fail_next(1, 550, at="DATA")             # the next DATA gets "550 …"

The port is the kernel's choice: the listening socket is bound to port 0 before the server starts
(aiosmtpd would otherwise need a port number up front). ``close()`` stops the server's loop and
joins its thread. AUTH is offered, never required; ``ReceivedMail.login`` says who authenticated.
Certificates come from the ``openssl`` command (the ``cryptography`` package is not installed):
a throw-away CA and a server certificate for the given names, in the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["MAIL", "RCPT", "DATA"]
_TEXT = {421: "4.3.2 Service not available", 450: "4.2.0 Mailbox busy", 451: "4.3.0 Try again later",
         452: "4.3.1 Insufficient storage", 550: "5.1.1 Mailbox unavailable", 553: "5.1.3 Bad address",
         554: "5.7.1 Rejected"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A test CA and a server certificate signed by it (PEM files)."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """What a client trusting only the test CA uses (``ChannelDeps.tls_context``)."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificates(directory: Path, names: tuple[str, ...] = ("mail.test",)) -> TlsFiles:
    """A CA and a certificate for ``names`` (DNS names; ``127.0.0.1`` is added as an IP name)."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=InfrAgent test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={names[0]}")
    alt = ",".join([*(f"DNS:{n}" for n in names), "IP:127.0.0.1"])
    (directory / "server.ext").write_text(
        f"subjectAltName={alt}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext")  # fmt: skip
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One mail the sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    #: the user name that authenticated, None without AUTH
    login: str | None
    #: whether the session was encrypted (STARTTLS or implicit TLS)
    tls: bool


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def _scripted(self, stage: Stage) -> str | None:
        with self.sink.lock:
            if self.sink.failures and self.sink.failures[0][0] == stage:
                _stage, code = self.sink.failures.popleft()
                return f"{code} {_TEXT.get(code, 'scripted failure')}"
        return None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if failed := self._scripted("MAIL"):
            return failed
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if failed := self._scripted("RCPT"):
            return failed
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if failed := self._scripted("DATA"):
            return failed
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=parsed,
            login=login,
            tls=self.sink.mode == "tls" or session.ssl is not None,
        )
        with self.sink.lock:
            self.sink.messages.append(mail)
        return "250 OK: queued"


class _Controller(Controller):
    """aiosmtpd's threaded controller serving a socket bound beforehand (so port 0 works)."""

    def __init__(self, sock: socket.socket, handler: _Handler, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SmtpSink:
    """See the module docstring."""

    def __init__(
        self,
        *,
        mode: Literal["plain", "starttls", "tls"] = "plain",
        tls: TlsFiles | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        if mode != "plain" and tls is None:
            raise ValueError(f"mode {mode!r} needs certificates (make_certificates)")
        self.mode = mode
        self.users = dict(users or {})
        self.messages: list[ReceivedMail] = []
        self.failures: deque[tuple[Stage, int]] = deque()
        self.auth_attempts: list[str] = []
        self.lock = threading.Lock()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.host = "127.0.0.1"
        self.port: int = sock.getsockname()[1]
        context = tls.server_context() if tls is not None else None
        self._controller = _Controller(
            sock,
            _Handler(self),
            server_hostname="sink.test",  # else aiosmtpd asks DNS for our FQDN
            ssl_context=context if mode == "tls" else None,
            tls_context=context if mode == "starttls" else None,
            # AUTH is offered, never required; over STARTTLS only once TLS is up
            auth_require_tls=mode == "starttls",
            authenticator=self._authenticate,
        )
        try:
            self._controller.start()
        except BaseException:
            sock.close()
            raise

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        with self.lock:
            self.auth_attempts.append(login)
        ok = login in self.users and self.users[login] == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def fail_next(self, n: int, code: int, *, at: Stage = "RCPT") -> None:
        """The next ``n`` commands of stage ``at`` are answered ``code`` (then normal service)."""
        with self.lock:
            self.failures.extend([(at, code)] * n)

    def close(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
