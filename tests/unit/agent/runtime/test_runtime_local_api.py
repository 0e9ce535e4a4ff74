"""Local endpoints over real sockets, and the /health and /metrics documents they serve."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infragent.agent.local_api import (
    ADDRESS_FILE,
    BoundAddress,
    Family,
    LocalApi,
    Reply,
    Snapshot,
    health_document,
    metric_families,
    publish_address,
    read_address,
    render_prometheus,
    withdraw_address,
)


def boom() -> Reply:
    raise RuntimeError("handler bug")


@pytest.fixture
def api() -> Iterator[str]:
    server = LocalApi(
        "127.0.0.1",
        0,
        {"/ok": lambda: Reply(200, b'{"ok": true}'), "/boom": boom},
        max_request_bytes=1024,
        idle_timeout_s=0.5,
        max_connections=4,
    )
    server.start()
    yield f"http://127.0.0.1:{server.address[1]}"
    server.close()


def test_get_404_405(api: str) -> None:
    ok = httpx.get(f"{api}/ok?x=1")
    assert (ok.status_code, ok.json(), ok.headers["connection"]) == (200, {"ok": True}, "close")
    assert httpx.get(f"{api}/missing").status_code == 404
    post = httpx.post(f"{api}/ok", content=b"x")
    assert (post.status_code, post.headers["allow"]) == (405, "GET")


def test_handler_error_is_500_and_server_keeps_serving(api: str, caplog: pytest.LogCaptureFixture) -> None:
    assert httpx.get(f"{api}/boom").status_code == 500
    assert "handler for /boom failed" in caplog.text
    assert httpx.get(f"{api}/ok").status_code == 200


def test_oversized_request_is_431(api: str) -> None:
    response = httpx.get(f"{api}/ok", headers={"X-Big": "a" * 4000})
    assert response.status_code == 431


def test_idle_and_excess_connections_are_closed(api: str) -> None:
    port = int(api.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]  # over max_connections
    try:
        assert httpx.get(f"{api}/ok").status_code == 200  # still served
        idle[-1].settimeout(3)
        started = time.monotonic()
        assert idle[-1].recv(10) == b""  # closed by the idle timeout
        assert time.monotonic() - started < 2.5
    finally:
        for sock in idle:
            sock.close()


def test_malformed_request_line(api: str) -> None:
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"garbage\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def snapshot(**overrides: object) -> Snapshot:
    values: dict[str, object] = {
        "version": "0.1.0",
        "uptime_s": 12.5,
        "ready": True,
        "endpoint": "http://monitor:8470",
        "reachable": True,
        "last_success": 1_700_000_000.25,
        "latency_ms": 3.456,
        "error": None,
        "buffer_bytes": 1024,
        "buffer_max_bytes": 4096,
        "buffer_records": 2,
        "buffer_points": 7,
        "checks": {"web": "up", "db": "down"},
        "cpu_percent": 0.04,
        "rss_bytes": 19 * 1024 * 1024,
        "points_collected": 100,
        "points_sent": 90,
        "points_dropped": 4,
        "points_dead_lettered": 6,
        "corrupt_records": 1,
        "collector_errors": {"disk": 2, 'we"ird\\fam\nily': 1},
        "events_sent": 3,
        "refused": None,
    }
    values.update(overrides)
    return Snapshot(**values)  # type: ignore[arg-type]


def test_health_document_shape() -> None:
    doc = health_document(snapshot())
    assert doc == {
        "status": "healthy",
        "uptime_seconds": 12.5,
        "version": "0.1.0",
        "checks": {
            "application": {"status": "degraded", "checks": {"web": "up", "db": "down"}},
            "collector_connectivity": {
                "endpoint": "http://monitor:8470",
                "last_successful_send": "2023-11-14T22:13:20.250Z",
                "latency_ms": 3.46,
                "error": None,
                "refused": None,
            },
            "buffer": {"current_size": 1024, "max_size": 4096, "usage_percent": 25.0, "dropped": 4},
            "system_resources": {"cpu_percent": 0.04, "memory_mb": 19.0},
        },
    }


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"reachable": False, "error": "refused"}, "degraded"),
        ({"buffer_bytes": 3300}, "degraded"),  # 80.6 % > 80 %
        ({"buffer_bytes": 3276}, "healthy"),  # 79.98 %
        ({"reachable": None, "last_success": None, "latency_ms": None}, "healthy"),  # not tried yet
        ({"refused": "metrics: HTTP 401: invalid API key"}, "degraded"),  # reachable, but refused
    ],
)
def test_degraded_when_unreachable_or_buffer_over_80_percent(
    overrides: dict[str, object], status: str
) -> None:
    assert health_document(snapshot(**overrides))["status"] == status


def test_prometheus_exposition_parses_and_escapes() -> None:
    text = render_prometheus(metric_families(snapshot())).decode()
    assert text.endswith("\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "agent_buffer_size": 1024,
        "agent_buffer_usage_percent": 25.0,
        "agent_buffer_records": 2,
        "agent_server_reachable": 1,
        "agent_server_latency_ms": 3.456,
        "agent_points_collected": 100,
        "agent_points_sent": 90,
        "agent_points_dropped": 4,
        "agent_points_dead_lettered": 6,
        "agent_buffer_points": 7,
        "agent_server_auth_failing": 0,
        "agent_corrupt_records": 1,
        "agent_events_sent": 3,
        "agent_uptime_seconds": 12.5,
    }
    for name, value in expected.items():
        assert families[name].samples[0].value == value, name
        assert families[name].documentation
    assert families["agent_points_sent"].type == "counter"
    refused = metric_families(snapshot(refused="metrics: HTTP 401: invalid API key"))
    assert [f.samples for f in refused if f.name == "agent_server_auth_failing"] == [(({}, 1),)]
    assert families["agent_buffer_size"].type == "gauge"
    errors = {s.labels["family"]: s.value for s in families["agent_collector_errors"].samples}
    assert errors == {"disk": 2, 'we"ird\\fam\nily': 1}  # escaped on the wire, intact after parsing


def test_special_values() -> None:
    family = Family(
        "x", "gauge", "help with \\ and\nnewline", (({}, float("nan")), ({"a": "b"}, float("inf")))
    )
    text = render_prometheus([family]).decode()
    assert "# HELP x help with \\\\ and\\nnewline" in text
    assert 'x NaN\nx{a="b"} +Inf\n' in text


def test_published_address_is_atomic_and_withdrawn_only_by_its_owner(tmp_path: Path) -> None:
    assert read_address(tmp_path) is None
    path = publish_address(tmp_path, BoundAddress(pid=41, host="127.0.0.1", port=40123))
    assert path == tmp_path / ADDRESS_FILE
    assert [p.name for p in tmp_path.iterdir()] == [ADDRESS_FILE]  # no temp file left behind
    found = read_address(tmp_path)
    assert found == BoundAddress(41, "127.0.0.1", 40123) and found.url == "http://127.0.0.1:40123"
    assert BoundAddress(41, "::1", 80).url == "http://[::1]:80"
    withdraw_address(tmp_path, pid=42)  # another process's file stays
    assert read_address(tmp_path) == found
    withdraw_address(tmp_path, pid=41)
    assert read_address(tmp_path) is None
    (tmp_path / ADDRESS_FILE).write_text("{half")
    assert read_address(tmp_path) is None  # unreadable: as if not published yet
