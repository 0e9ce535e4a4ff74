"""How httpx's transport errors map onto the shared retry policy (:mod:`infragent.backoff`).

Why a module of its own: the policy itself is pure and imports no HTTP library, so each client maps
its own exceptions onto ``backoff.TransportFailure``. The SDK client, the webhook dispatch and the
remote-write exporter all speak httpx and share this one mapping, which lives outside all three so
that the server-side senders do not import the SDK; the agent has its own small HTTP client whose
every ``HttpError`` is a retryable network failure.
"""

from __future__ import annotations

import httpx

from infragent.backoff import TransportFailure


def transport_failure(exc: httpx.TransportError) -> TransportFailure:
    """The kind of an httpx transport error; ``unsendable`` when the request cannot be sent as built.

    ``UnsupportedProtocol`` (a URL scheme httpx cannot speak) and ``LocalProtocolError`` (a request
    h11 refuses to encode) will fail identically on every try, so they are not worth a retry.
    """
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.NetworkError):
        return "network"
    if isinstance(exc, httpx.ProxyError):
        return "proxy"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    return "unsendable"
