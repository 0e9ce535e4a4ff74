"""httpx transport errors onto the shared policy (the policy itself: tests/unit/test_backoff.py)."""

from __future__ import annotations

import httpx
import pytest

from infragent import backoff, sdk
from infragent.backoff import Verdict
from infragent.transport import transport_failure

CASES: list[tuple[httpx.TransportError, str, Verdict]] = [
    (httpx.ConnectTimeout("t"), "timeout", "retry"),
    (httpx.ReadTimeout("t"), "timeout", "retry"),
    (httpx.WriteTimeout("t"), "timeout", "retry"),
    (httpx.PoolTimeout("t"), "timeout", "retry"),
    (httpx.ConnectError("refused"), "connect", "retry"),
    (httpx.ReadError("reset"), "network", "retry"),
    (httpx.WriteError("broken pipe"), "network", "retry"),
    (httpx.CloseError("close"), "network", "retry"),
    (httpx.ProxyError("proxy"), "proxy", "retry"),
    (httpx.RemoteProtocolError("garbled"), "protocol", "retry"),
    (httpx.LocalProtocolError("cannot encode"), "unsendable", "final"),
    (httpx.UnsupportedProtocol("ftp://"), "unsendable", "final"),
]


@pytest.mark.parametrize(("exc", "kind", "verdict"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_transport_errors_map_onto_the_shared_policy(
    exc: httpx.TransportError, kind: str, verdict: Verdict
) -> None:
    assert transport_failure(exc) == kind
    assert backoff.classify_failure(transport_failure(exc)) == verdict


def test_the_sdk_exports_the_shared_retry_policy() -> None:
    assert sdk.RetryPolicy is backoff.RetryPolicy
