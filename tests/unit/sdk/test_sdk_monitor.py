"""The health monitor, driven check by check with ``check_once(now)`` against real HTTP apps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from scripted_server import HealthApp, Reply, ScriptedServer, refused_url

from infragent.sdk import Client, Monitor

Server = tuple[ScriptedServer, str]
Health = tuple[HealthApp, str]
MakeClient = Callable[..., Client]

T0 = 1_750_000_000.0


class BrokenOnceReporter:
    """Raises an unexpected error on the first report (a bug, not a ReportError), then delegates."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0

    def report_event(
        self,
        type: str,
        service: str | None = None,
        severity: str = "warning",
        data: Mapping[str, Any] | None = None,
        node_id: str | None = None,
    ) -> str:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("reporter bug")
        return self.client.report_event(type, service, severity, data, node_id)


class FakeClock:
    """Stands in for time.time() so reported_at is predictable."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_outage_is_reported_once_and_recovery_once(
    server: Server, health: Health, make_client: MakeClient
) -> None:
    scripted, url = server
    app, health_url = health
    clock = FakeClock()
    monitor = make_client(url, clock=clock).monitor(health_url, interval_s=10)

    assert monitor.check_once(T0) is None
    app.status = 503
    clock.now = T0 + 10.2
    assert monitor.check_once(T0 + 10) == "app_down"
    assert monitor.check_once(T0 + 20) is None
    assert monitor.check_once(T0 + 30) is None
    app.status = 200
    clock.now = T0 + 40.1
    assert monitor.check_once(T0 + 40) == "app_recovered"
    assert monitor.check_once(T0 + 50) is None

    down, recovered = scripted.events()
    assert down["type"] == "app_down"
    assert down["severity"] == "critical"
    assert down["service"] == "shop"
    assert down["data"]["url"] == health_url
    assert down["data"]["status"] == 503
    assert down["data"]["error"] == "unexpected status 503"
    assert down["data"]["consecutive_failures"] == 1
    assert down["data"]["detected_at"] == T0 + 10
    assert down["data"]["latency_ms"] >= 0
    assert recovered["type"] == "app_recovered"
    assert recovered["severity"] == "info"
    assert recovered["data"]["downtime_s"] == 30
    assert recovered["data"]["down_detected_at"] == T0 + 10

    last = monitor.last_transition
    assert last is not None
    assert last.kind == "app_recovered"
    assert last.detected_at == T0 + 40
    assert last.reported_at == T0 + 40.1
    assert last.event_id == "ev-2"


def test_down_transition_records_detected_and_reported_at(
    server: Server, health: Health, make_client: MakeClient
) -> None:
    _, url = server
    app, health_url = health
    clock = FakeClock(T0 + 0.25)
    monitor = make_client(url, clock=clock).monitor(health_url)
    app.status = 500

    monitor.check_once(T0)

    last = monitor.last_transition
    assert last is not None
    assert (last.kind, last.detected_at, last.reported_at, last.event_id) == (
        "app_down",
        T0,
        T0 + 0.25,
        "ev-1",
    )
    assert monitor.is_down
    assert monitor.pending == ()


def test_failures_before_down_is_honoured(server: Server, health: Health, make_client: MakeClient) -> None:
    scripted, url = server
    app, health_url = health
    monitor = make_client(url).monitor(health_url, failures_before_down=3)
    app.status = 502

    assert [monitor.check_once(T0 + i) for i in range(5)] == [None, None, "app_down", None, None]

    [down] = scripted.events()
    assert down["data"]["consecutive_failures"] == 3
    assert down["data"]["first_failure_at"] == T0
    assert down["data"]["detected_at"] == T0 + 2


def test_a_blip_below_the_threshold_reports_nothing(
    server: Server, health: Health, make_client: MakeClient
) -> None:
    scripted, url = server
    app, health_url = health
    monitor = make_client(url).monitor(health_url, failures_before_down=2)

    app.status = 503
    assert monitor.check_once(T0) is None
    app.status = 200
    assert monitor.check_once(T0 + 1) is None
    app.status = 503
    assert monitor.check_once(T0 + 2) is None  # the count restarted after the good check

    assert scripted.requests == []
    assert monitor.consecutive_failures == 1


def test_expect_status_decides_what_is_up(server: Server, health: Health, make_client: MakeClient) -> None:
    _, url = server
    app, health_url = health
    monitor = make_client(url).monitor(health_url, expect_status={200})
    app.status = 204

    assert monitor.check_once(T0) == "app_down"


def test_unreachable_app_is_down_with_the_transport_error(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    monitor = make_client(url).monitor(f"{refused_url()}/health", timeout_s=1)

    assert monitor.check_once(T0) == "app_down"

    [down] = scripted.events()
    assert down["data"]["status"] is None
    assert down["data"]["error"].startswith("ConnectError")


def test_failed_down_report_is_kept_and_retried_next_check(
    server: Server, health: Health, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    scripted, url = server
    app, health_url = health
    clock = FakeClock()
    monitor = make_client(url, max_retries=0, clock=clock).monitor(health_url)
    scripted.script(Reply(status=503))
    app.status = 503

    with caplog.at_level(logging.WARNING):
        assert monitor.check_once(T0) == "app_down"
    assert "will retry on the next check" in caplog.text
    assert scripted.events() == []
    assert [t.kind for t in monitor.pending] == ["app_down"]
    last = monitor.last_transition
    assert last is not None
    assert last.reported_at is None

    clock.now = T0 + 30.5
    assert monitor.check_once(T0 + 30) is None  # not a new transition: the old one is delivered

    [down] = scripted.events()
    assert down["type"] == "app_down"
    assert down["data"]["detected_at"] == T0
    last = monitor.last_transition
    assert last is not None
    assert (last.detected_at, last.reported_at) == (T0, T0 + 30.5)
    assert monitor.pending == ()


def test_undelivered_down_is_sent_before_recovery(
    server: Server, health: Health, make_client: MakeClient
) -> None:
    scripted, url = server
    app, health_url = health
    monitor = make_client(url, max_retries=0).monitor(health_url)
    scripted.script(Reply(status=500))
    app.status = 500
    monitor.check_once(T0)

    app.status = 200
    assert monitor.check_once(T0 + 30) == "app_recovered"

    assert [e["type"] for e in scripted.events()] == ["app_down", "app_recovered"]


def test_refused_report_does_not_stop_the_thread(
    server: Server, health: Health, make_client: MakeClient
) -> None:
    """A 401 from the server is logged; the thread keeps checking and delivers later."""
    scripted, url = server
    app, health_url = health
    scripted.script(Reply(status=401, body={"detail": "invalid api key"}))
    app.status = 503
    monitor = make_client(url, max_retries=0).monitor(health_url, interval_s=0.01)

    with monitor:
        assert scripted.accepted.wait(10), "the down event was never delivered"

    assert [e["type"] for e in scripted.events()][:1] == ["app_down"]
    assert scripted.requests[0].json["type"] == "app_down"  # the refused first attempt


def test_unexpected_error_in_a_check_does_not_stop_the_thread(
    server: Server, health: Health, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    scripted, url = server
    app, health_url = health
    app.status = 503
    reporter = BrokenOnceReporter(make_client(url))
    monitor = Monitor(reporter, health_url, service="shop", interval_s=0.01)

    with monitor:
        assert scripted.accepted.wait(10), "the down event was never delivered"

    assert "reporter bug" in caplog.text  # logged with its traceback at the loop boundary
    assert [e["type"] for e in scripted.events()] == ["app_down"]


def test_start_twice_is_an_error_and_stop_is_idempotent(health: Health, make_client: MakeClient) -> None:
    _, health_url = health
    monitor = make_client("http://127.0.0.1:9").monitor(health_url, interval_s=60)

    monitor.start()
    with pytest.raises(RuntimeError, match="already started"):
        monitor.start()
    monitor.stop()
    monitor.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"health_url": "ftp://x/health"}, "http"),
        ({"interval_s": 0}, "interval_s"),
        ({"failures_before_down": 0}, "failures_before_down"),
    ],
)
def test_bad_settings_fail_at_construction(
    make_client: MakeClient, kwargs: dict[str, object], message: str
) -> None:
    client = make_client("http://127.0.0.1:9")
    kwargs.setdefault("health_url", "http://127.0.0.1:9/health")

    with pytest.raises(ValueError, match=message):
        client.monitor(**kwargs)  # type: ignore[arg-type]


def test_monitor_needs_a_service(make_client: MakeClient) -> None:
    client = make_client("http://127.0.0.1:9", service=None)

    with pytest.raises(ValueError, match="service is required"):
        client.monitor("http://127.0.0.1:9/health")


def test_client_close_stops_its_monitors(health: Health, make_client: MakeClient) -> None:
    _, health_url = health
    client = make_client("http://127.0.0.1:9", service="closing")
    client.monitor(health_url, interval_s=60).start()
    assert "infragent-monitor-closing" in {t.name for t in threading.enumerate()}

    client.close()

    assert "infragent-monitor-closing" not in {t.name for t in threading.enumerate()}
