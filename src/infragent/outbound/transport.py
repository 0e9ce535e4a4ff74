"""An httpx transport for tenant-controlled URLs: resolve once, judge, connect to the address judged.

Why at the connection and not only at registration: a name can resolve to a public address when the
tenant registers it and to ``169.254.169.254`` a minute later (DNS rebinding), and a check followed
by a second lookup for the connection can be answered differently each time. So the check sits where
the socket is opened: ``GuardedBackend.connect_tcp`` gets the host of the URL, looks it up once
through the injected resolver, lets ``OutboundPolicy.choose`` pick an allowed address and connects
to exactly that address. A host that is already an address is judged without a lookup.

Why a network backend under httpcore rather than rewriting the request's URL to the address: the
pool, the ``Host`` header and TLS (SNI and certificate checks) all keep working with the name the
tenant gave; only the TCP connect is redirected to the checked address. A kept-alive connection
is reused without a new lookup, which is safe: it is connected to an address that was checked.

What else is closed here: proxies from the environment (a proxy would resolve the name itself) and
``.netrc`` credentials are not used (``trust_env=False``); redirects are the client's to refuse
(``follow_redirects=False``), see ``actions/webhook.py``. And httpx's own log line per request
(``HTTP Request: POST <url> …``, at INFO, the server's default level) shows a URL's scheme and
host only (``HostOnlyUrls``): Slack, Discord and Teams webhook URLs are credentials in their path or
query, and a log is no place for them (``tests/integration/notify/test_secret_leaks.py``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable, Sequence

import httpcore
import httpx

from infragent.outbound.policy import Address, OutboundPolicy, OutboundRefusedError, Resolver

logger = logging.getLogger(__name__)


class HostOnlyUrls(logging.Filter):
    """Cuts the path and query off the URL in httpx's request lines (the module docstring says why).

    A filter acts on the records of the logger it is added to, so it is added to ``httpx``'s once,
    when this module is imported: every httpx client of the process is covered, which costs nothing
    (the host, method and status stay; a path is not worth a secret in a log line).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            url = args[1]
            if url.raw_path not in (b"", b"/"):
                port = f":{url.port}" if url.port is not None else ""
                record.args = (args[0], f"{url.scheme}://{url.host}{port}/…", *args[2:])
        return True


logging.getLogger("httpx").addFilter(HostOnlyUrls())


def system_resolver(host: str, port: int) -> Sequence[str]:
    """The system's answer for ``host`` (``getaddrinfo``, TCP), addresses in its order, each once."""
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with the outbound policy in front of every TCP connect."""

    def __init__(
        self,
        policy: OutboundPolicy,
        resolve: Resolver = system_resolver,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolve
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses: Sequence[Address | str]
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = self._resolve(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: no address")
        verdict = self._policy.choose(addresses)
        if not verdict.allowed:
            logger.warning("outbound connection to %s:%d refused: %s", host, port, verdict.reason)
            raise OutboundRefusedError(f"{host}:{port}", str(verdict.address), verdict.reason)
        return self._inner.connect_tcp(
            str(verdict.address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise OutboundRefusedError(path, path, "unix sockets are never a tenant's destination")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through ``GuardedBackend``.

    httpx takes no network backend, so the pool it built is replaced by an ``httpcore.ConnectionPool``
    with the same settings and ours; ``tests/integration/actions/test_outbound_transport.py`` fails
    if a later httpx stops sending requests through ``_pool``.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolve: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolve),
        )


def guarded_client(
    policy: OutboundPolicy,
    *,
    timeout_s: float,
    resolve: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An httpx client for tenant URLs: guarded connections, no redirects, nothing from the environment.

    ``verify`` is for tests with their own certificate authority; certificates are always checked.
    """
    return httpx.Client(
        transport=GuardedTransport(policy, resolve=resolve, verify=verify),
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
    )
