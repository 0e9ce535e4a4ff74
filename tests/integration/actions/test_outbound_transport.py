"""The guarded transport against a real server: one lookup per connection, to the address it checked.

No network is needed: the resolver is injected (a callable), so a "DNS rebinding" name answers an
allowed loopback address first and the metadata address on any later lookup, and the receiver is a
real uvicorn on 127.0.0.1. A transport that looked the name up twice (once to check, once to
connect) would connect to the second answer; this one cannot.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from infragent.outbound.policy import OutboundPolicy, OutboundRefusedError
from infragent.outbound.transport import GuardedBackend, guarded_client
from support.servers import serve

LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])


@dataclass
class Hits:
    """What the receiver saw: the ``Host`` header and the local address each request arrived on."""

    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def hits() -> Hits:
    return Hits()


@pytest.fixture
def port(hits: Hits) -> Iterator[int]:
    async def hook(request: Request) -> Response:
        server = request.scope["server"]
        hits.seen.append((request.headers["host"], server[0]))
        return PlainTextResponse("hello")

    async def bounce(request: Request) -> Response:
        return RedirectResponse(str(request.url_for("hook")), status_code=302)

    app = Starlette(routes=[Route("/hook", hook, name="hook"), Route("/bounce", bounce)])
    with serve(app) as base:
        yield int(base.rsplit(":", 1)[1])


class Rebinding:
    """Answers each lookup with the next entry of ``answers`` and counts the lookups."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def test_one_lookup_and_the_checked_address_is_the_one_connected(hits: Hits, port: int) -> None:
    resolve = Rebinding(["127.0.0.1"], ["169.254.169.254"])
    with guarded_client(LOOPBACK, timeout_s=5, resolve=resolve) as client:
        for _ in range(3):  # kept alive: one connection, one lookup
            assert client.get(f"http://rebind.test:{port}/hook").text == "hello"
    assert resolve.calls == [("rebind.test", port)]
    assert hits.seen == [(f"rebind.test:{port}", "127.0.0.1")] * 3  # the name in Host, the checked address

    # The next connection looks the name up again and gets the metadata address: refused, not connected.
    with (
        guarded_client(LOOPBACK, timeout_s=5, resolve=resolve) as client,
        pytest.raises(OutboundRefusedError) as refused,
    ):
        client.get(f"http://rebind.test:{port}/hook")
    assert len(resolve.calls) == 2 and len(hits.seen) == 3
    assert refused.value.address == "169.254.169.254" and "never allowed" in refused.value.reason


class Recording(httpcore.NetworkBackend):
    """The real sync backend, noting the host of every connect it is asked for."""

    def __init__(self) -> None:
        self.inner = httpcore.SyncBackend()
        self.hosts: list[str] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.hosts.append(host)
        return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)


def test_refused_addresses_in_an_answer_are_skipped_never_connected(hits: Hits, port: int) -> None:
    resolve = Rebinding(["169.254.169.254", "10.0.0.1", "127.0.0.1", "127.0.0.2"])
    recording = Recording()
    backend = GuardedBackend(LOOPBACK, resolve, inner=recording)
    with httpcore.ConnectionPool(network_backend=backend) as pool:
        answer = pool.request("GET", f"http://mixed.test:{port}/hook")
    assert answer.status == 200 and recording.hosts == ["127.0.0.1"] and len(resolve.calls) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]"])
def test_an_address_in_the_url_is_judged_without_a_lookup(hits: Hits, port: int, host: str) -> None:
    resolve = Rebinding(["169.254.169.254"])
    with (
        guarded_client(OutboundPolicy(), timeout_s=5, resolve=resolve) as client,
        pytest.raises(OutboundRefusedError, match="loopback address, refused unless listed"),
    ):
        client.get(f"http://{host}:{port}/hook")
    assert resolve.calls == [] and hits.seen == []
    with guarded_client(LOOPBACK, timeout_s=5, resolve=resolve) as client:
        assert client.get(f"http://127.0.0.1:{port}/hook").status_code == 200
    assert resolve.calls == []


def test_a_name_that_does_not_resolve_is_a_connect_error(port: int) -> None:
    def nowhere(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    with (
        guarded_client(LOOPBACK, timeout_s=5, resolve=nowhere) as client,
        pytest.raises(httpx.ConnectError, match=r"cannot resolve 'nowhere\.test'"),
    ):
        client.get(f"http://nowhere.test:{port}/hook")


def test_redirects_are_not_followed(hits: Hits, port: int) -> None:
    with guarded_client(LOOPBACK, timeout_s=5) as client:
        answer = client.get(f"http://127.0.0.1:{port}/bounce")
    assert answer.status_code == 302 and hits.seen == []


def test_proxies_from_the_environment_are_not_used(
    hits: Hits, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would resolve the name itself, after our check: it is never used for tenant URLs."""
    proxied: list[str] = []

    async def proxy(request: Request) -> Response:
        proxied.append(str(request.url))
        return PlainTextResponse("from the proxy")

    with serve(Starlette(routes=[Route("/{path:path}", proxy)])) as proxy_base:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy_base)
        with guarded_client(LOOPBACK, timeout_s=5) as client:
            assert client.get(f"http://127.0.0.1:{port}/hook").text == "hello"
    assert proxied == [] and len(hits.seen) == 1


# -- https: the name stays the TLS server name ------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for ``hook.test`` signed by it (made with the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=ca",
        cwd=tmp_path,
    )
    _openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=hook.test", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:hook.test\n")
    _openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "1", "-extfile", "san.ext",
        cwd=tmp_path,
    )  # fmt: skip
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


@contextmanager
def _serve_tls(app: Starlette, cert: Path, key: Path) -> Iterator[int]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(15)


def test_https_keeps_the_name_for_sni_and_the_certificate(tls_files: tuple[Path, Path, Path]) -> None:
    ca, cert, key = tls_files
    seen: list[str] = []

    async def hook(request: Request) -> Response:
        seen.append(request.headers["host"])
        return PlainTextResponse("hello over tls")

    trust = ssl.create_default_context(cafile=str(ca))
    resolve = Rebinding(["127.0.0.1"])
    app = Starlette(routes=[Route("/hook", hook)])
    with (
        _serve_tls(app, cert, key) as port,
        guarded_client(LOOPBACK, timeout_s=5, resolve=resolve, verify=trust) as client,
    ):
        # connected to 127.0.0.1, verified as hook.test: the name was the TLS server name
        assert client.get(f"https://hook.test:{port}/hook").text == "hello over tls"
        # the same server by its address: the certificate does not name it, so it is refused
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|hostname"):
            client.get(f"https://127.0.0.1:{port}/hook")
    assert seen == [f"hook.test:{port}"] and resolve.calls == [("hook.test", port)]
