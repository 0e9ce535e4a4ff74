"""The demo story: a sample app crashes, the SDK reports, the server opens an incident, the responder
decides on the incident and restarts the app, the app answers.

Everything is real and local: the server and responder run in this process over a real store; the
sample app is a separate process that is SIGKILLed and respawned by the SDK's ``restart`` handler,
which the responder reaches through a signed webhook over loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from infragent.cli.runtime import ThreadedServer, allowing_local_webhooks, start_responder
from infragent.config import Settings
from infragent.demo.timeline import Timeline
from infragent.sdk import Client
from infragent.server.app import create_app
from infragent.store.sql import open_store
from infragent.store.wakeup import Wakeup


@dataclass
class DemoResult:
    healed: bool
    failed_at: float | None = None
    detected_at: float | None = None
    reported_at: float | None = None
    decided_at: float | None = None
    action_sent_at: float | None = None
    healthy_at: float | None = None
    action: str | None = None
    result: str | None = None
    #: the incident the outage opened, which the responder decided on
    incident_id: str | None = None
    error: str | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("timeline")
        return data


class SampleApp:
    """Owns the sample app's process: start, crash (SIGKILL), restart on the same port.

    The first start binds port 0 and learns its port from the ``READY <port>`` line, so no port is
    probed and then bound (another process could take it in between); a restart reuses that port,
    as a real service would.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self) -> int:
        with self.lock:
            proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                [sys.executable, "-m", "infragent.demo.sample_app", "--port", str(self.port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            line = proc.stdout.readline() if proc.stdout else ""
            if proc.stdout:
                proc.stdout.close()  # the app prints one line only
            if not line.startswith("READY"):
                proc.kill()
                proc.wait()
                raise RuntimeError(f"sample app did not start: {line!r}")
            self.port = int(line.split()[1])
            self.proc = proc
            return proc.pid

    def crash(self) -> None:
        with self.lock:
            if self.proc is not None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def stop(self) -> None:
        self.crash()


class _Late:
    """An ASGI app whose target is set after the server is up (the webhook needs the secret first)."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.target is not None
        await self.target(scope, receive, send)


def _serve(app: ASGIApp) -> tuple[ThreadedServer, threading.Thread, str]:
    server = ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("demo server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def _shutdown(server: ThreadedServer, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(10)


def _wait(predicate: Callable[[], bool], deadline: float, step_s: float = 0.02) -> bool:
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return False


#: The audit entries the timeline shows (``_audit_text`` words them).
_AUDIT_STEPS = frozenset({"event.received", "decision.made", "command.sent", "command.result"})


def run_demo(
    database_url: str = "",
    *,
    interval_s: float = 1.0,
    timeout_s: float = 60.0,
    say: Callable[[str], None] = print,
) -> DemoResult:
    result = DemoResult(healed=False)
    deadline = time.monotonic() + timeout_s
    cleanup: list[Callable[[], None]] = []
    timeline = Timeline(say)

    with tempfile.TemporaryDirectory(prefix="infragent-demo-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url, cooldown_s=5, sweep_interval_s=5)
        settings = allowing_local_webhooks(settings)  # the sample app's webhook is on this machine
        try:
            store = open_store(settings.resolved_database_url)
            cleanup.append(store.close)
            wakeup = Wakeup()
            running = start_responder(settings, store, wakeup, watch=False)
            cleanup.append(running.stop)
            server, thread, base = _serve(create_app(settings, store=store, on_event=wakeup.set))
            cleanup.append(lambda: _shutdown(server, thread))
            timeline.now(f"server and responder up at {base} (store: {store.engine.dialect.name})")

            app = SampleApp()
            timeline.now(f"sample app started, pid {app.start()}, health at {app.url}")
            cleanup.append(app.stop)

            hook = _Late()
            hook_server, hook_thread, hook_base = _serve(hook)
            cleanup.append(lambda: _shutdown(hook_server, hook_thread))
            reg = (
                httpx.post(
                    f"{base}/api/v1/clients/register",
                    json={
                        "email": "demo@example.com",
                        "company_name": "Demo",
                        "webhook_url": f"{hook_base}/webhooks/agent",
                    },
                    timeout=10,
                )
                .raise_for_status()
                .json()
            )
            client = Client(
                base, reg["api_key"], reg["webhook_secret"], service="demo-web", data_dir=Path(tmp) / "sdk"
            )
            cleanup.append(client.close)

            @client.action("restart", description="Restart the demo web app")
            def restart(_command: object) -> str:
                # Runs on the webhook's worker thread: recorded with its time, printed in order later.
                timeline.add("SDK: signed restart command verified, restarting the app")
                pid = app.start()
                timeline.add(f"SDK: app restarted, new pid {pid}")
                return f"restarted, new pid {pid}"

            hook.target = client.webhook_app()
            client.register_actions()
            monitor = client.monitor(app.url, interval_s=interval_s, timeout_s=1.0).start()
            timeline.now(f"client registered; SDK monitors the app every {interval_s:g} s")

            time.sleep(min(interval_s, 1.0) + 0.1)  # let the monitor see the app healthy once
            result.failed_at = time.time()
            app.crash()
            timeline.add("the app crashed (SIGKILL)", at=result.failed_at)
            timeline.flush()

            if not _wait(
                lambda: (t := monitor.last_transition) is not None and t.reported_at is not None, deadline
            ):
                raise TimeoutError("the SDK did not report the outage")
            down = monitor.last_transition
            assert down is not None
            result.detected_at, result.reported_at = down.detected_at, down.reported_at
            timeline.add(f"SDK detected app_down ({down.data.get('error')})", at=down.detected_at)
            # Nothing caused by the report can have happened before the outage was detected.
            timeline.flush(until=down.detected_at)

            if not _wait(lambda: _probe(app.url), deadline):
                raise TimeoutError("the app did not come back")
            result.healthy_at = timeline.add("the app answers again")

            headers = {"Authorization": f"Bearer {reg['api_key']}"}
            detail: dict[str, Any] = {}

            def processed() -> bool:
                nonlocal detail
                detail = httpx.get(f"{base}/api/v1/events/{down.event_id}", headers=headers, timeout=5).json()
                return detail.get("status") == "processed"

            _wait(processed, deadline, 0.05)
            command = detail.get("command") or {}
            result.incident_id = detail.get("incident_id")
            result.action = command.get("action")
            result.result = f"{command.get('status')}: {command.get('output')}"
            for entry in detail.get("audit", []):
                kind, at = entry["kind"], float(entry["at"])
                if kind == "decision.made":
                    result.decided_at = at
                elif kind == "command.sent":
                    result.action_sent_at = at
                if kind in _AUDIT_STEPS:
                    timeline.add(_audit_text(kind, down.event_id, result), at=at)
            result.healed = command.get("status") == "done" and result.healthy_at is not None
            timeline.now(
                f"event processed: incident {result.incident_id}, decision {result.action!r}, "
                f"result {result.result}"
            )
        except Exception as exc:  # noqa: BLE001 - the demo reports any failure as "not healed"
            result.error = f"{type(exc).__name__}: {exc}"
            timeline.now(f"demo failed: {result.error}")
        finally:
            timeline.flush()
            for fn in reversed(cleanup):
                fn()
    result.timeline = timeline.steps
    return result


def _audit_text(kind: str, event_id: str | None, result: DemoResult) -> str:
    if kind == "event.received":
        return f"server stored event {event_id} on incident {result.incident_id}, reported by the SDK"
    if kind == "decision.made":
        return f"responder decided: {result.action} (incident {result.incident_id})"
    if kind == "command.sent":
        return f"responder sent the signed {result.action} command"
    return f"responder recorded the result: {result.result}"


def _probe(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False
