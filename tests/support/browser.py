"""The browser tests' world: a real server (uvicorn + responder thread on SQLite), tenants, signed-in
sessions handed to Chromium as cookies, agents that ingest through the real API, and a page guard.

Why a real server and not a TestClient: the browser must load every asset, open the live stream
(SSE) and run htmx against real HTTP; the responder thread is the one ``infragent up`` starts, so
an incident's timeline fills in the page exactly as in production.

Why sessions are minted (``LiveServer.session``) rather than typed into /login: most scenarios are
about what a role sees, not about signing in (``test_access.py`` signs in through the form); an
argon2 hash per test would cost seconds.

The guard (``PageGuard``) makes three kinds of silent breakage fail a test: a request to anything
but this server (a CDN, a font host: the dashboard must work offline), a console error (CSP
violations are reported there), and an uncaught page exception.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, Response, Route

from infragent import wire
from infragent.auth import sessions as tokens
from infragent.auth.registration import mint
from infragent.cli.runtime import start_responder
from infragent.config import Settings
from infragent.model import ActionSpec
from infragent.sdk import Client, Command
from infragent.server.app import create_app
from infragent.server.services import AppServices
from infragent.store import users
from infragent.store.records import Registration
from infragent.store.sql import SqlStore, open_store
from infragent.store.wakeup import Wakeup
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client, register_agent, sqlite_url
from support.servers import serve

CHROMIUM = Path("/usr/bin/chromium")
#: The issue's flags: no sandbox (containers), no GPU, and nothing phoning home.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
#: How long a live update may take to show (the contract: a few seconds; charts: 2 s).
LIVE_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class Session:
    """A signed-in user: the cookie the browser carries and the CSRF token its forms send."""

    user_id: str
    email: str
    role: str
    client_id: str
    cookie: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        """What a state-changing request outside the browser sends with the cookie."""
        return {tokens.CSRF_HEADER: self.csrf, "Cookie": f"{tokens.COOKIE}={self.cookie}"}


@dataclass
class PushReceiver:
    """A push agent's signed webhook (the real SDK app on 127.0.0.1) that runs nothing: each
    allowlisted ``restart`` answers ``restarted <target>``. ``gate`` holds a run until the test
    releases it, so a page can be watched before the result lands."""

    reg: Registration
    url: str
    runs: Counter[str] = field(default_factory=Counter)
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return sum(self.runs.values())


@dataclass
class LiveServer:
    """One server for a test module; each test makes its own tenants on it."""

    base_url: str
    app: FastAPI
    store: SqlStore
    tmp: Path

    @property
    def svc(self) -> AppServices:
        services: AppServices = self.app.state.services
        return services

    def tenant(self, webhook_url: str = "http://127.0.0.1:9/hook", **kw: Any) -> Registration:
        """A new tenant (client) with its admin API key."""
        email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
        return create_client(self.store, email, "Acme " + email[4:12], webhook_url, now=time.time(), **kw)

    def session(self, client_id: str, role: str, email: str | None = None) -> Session:
        """A user with ``role`` in ``client_id``, signed in through the real session service."""
        address = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        with self.store.write() as conn:
            user = users.create_user(
                conn,
                email=address,
                name=address.split("@")[0],
                password_hash="not-a-usable-hash",
                client_id=client_id,
                role=role,
                now=time.time(),
                actor="test",
            )
        cookie, record = self.svc.sessions.start(user.id, client_id, "127.0.0.1", "playwright")
        return Session(user.id, user.email, role, client_id, cookie, record.csrf_token)

    def http(self, key: str | None = None) -> httpx.Client:
        """An API client on this server (close it: ``with server.http(key) as http``)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)

    def register_agent(self, key: str, node_id: str, mode: str = "push", actions: bool = True) -> None:
        """Announce an agent through the API, as agents do, with an allowlisted ``restart``."""
        allow = [{"name": "restart", "params": {"name": r"[a-z0-9_-]+"}}] if actions else []
        with self.http(key) as http:
            r = http.post("/api/v1/agents", json={"node_id": node_id, "command_mode": mode, "actions": allow})
        assert r.status_code == 200, r.text

    def report(self, key: str, node_id: str, type_: str = "app_down", severity: str = "critical") -> str:
        """Report an event for ``node_id`` (service ``web``) through the API; returns its incident id."""
        with self.http(key) as http:
            r = http.post(
                "/api/v1/events",
                json={"type": type_, "service": "web", "severity": severity, "node_id": node_id, "data": {}},
            )
        assert r.status_code == 202, r.text
        incident_id: str | None = r.json()["incident_id"]
        assert incident_id, r.text
        return incident_id

    def ingest(self, key: str, host: str, ts: float, cpu_busy: float = 0.25) -> None:
        """POST one agent tick for ``host`` at ``ts`` through the native ingest route."""
        body = wire.encode_batch(host_tick(host, ts, cpu_busy))
        with self.http(key) as http:
            r = http.post(
                "/api/v1/metrics",
                content=body,
                headers={"Content-Type": wire.CONTENT_TYPE, "Content-Encoding": "gzip"},
            )
        assert r.status_code == 200, r.text

    @contextmanager
    def push_tenant(self, node_id: str, gate: threading.Event | None = None) -> Iterator[PushReceiver]:
        """A tenant whose webhook is a local signed receiver, with ``node_id`` registered on it."""
        credentials = mint()
        sdk = Client(
            "http://127.0.0.1:9",
            credentials.key.plaintext,
            credentials.webhook_secret,
            service="web",
            data_dir=self.tmp / f"sdk-{uuid.uuid4().hex[:8]}",
        )
        recv: PushReceiver | None = None

        @sdk.action("restart", params={"name": r"[a-z0-9_-]+"})
        def restart(command: Command) -> str:
            assert recv is not None
            recv.entered.set()
            if recv.gate is not None:
                recv.gate.wait(30)
            recv.runs[command.command_id] += 1
            return f"restarted {command.params.get('name') or command.target}"

        try:
            with serve(sdk.webhook_app()) as base:
                url = f"{base}/webhooks/agent"
                recv = PushReceiver(self.tenant(url, credentials=credentials), url, gate=gate)
                register_agent(
                    self.store,
                    recv.reg.client.id,
                    node_id,
                    kind="sdk",
                    command_mode="push",
                    actions=[ActionSpec("restart", {"name": r"[a-z0-9_-]+"})],
                    labels={},
                    now=time.time(),
                )
                yield recv
                if gate is not None:
                    gate.set()
        finally:
            sdk.close()


def server_settings(tmp: Path, **overrides: Any) -> Settings:
    """What the browser scenarios need: loopback webhooks, a fast heartbeat, no cooldown."""
    values: dict[str, Any] = {
        "data_dir": tmp,
        "database_url": sqlite_url(tmp),
        "webhook_allowed_networks": ("127.0.0.0/8",),
        "stream_heartbeat_s": 1,
        "cooldown_s": 0,
        "webhook_retries": 0,
        "webhook_timeout_s": 10,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def live_server(tmp: Path, **overrides: Any) -> Iterator[LiveServer]:
    """The app under uvicorn on a free port plus a responder thread, both on one SQLite store."""
    settings = server_settings(tmp, **overrides)
    store = open_store(settings.database_url)
    with ExitStack() as stack:
        stack.callback(store.close)
        wakeup = Wakeup()
        running = start_responder(settings, store, wakeup, watch=False)
        stack.callback(running.stop)
        app = create_app(settings, store=store, on_event=wakeup.set)
        base = stack.enter_context(serve(app))
        yield LiveServer(base, app, store, tmp)


def host_tick(host: str, ts: float, cpu_busy: float = 0.25) -> MetricBatch:
    """One tick of a host agent: CPU by mode, memory by state, load, one filesystem, disk, network."""

    def gauge(name: str, value: float, **attrs: str) -> SeriesData:
        return SeriesData(name, "1", "gauge", False, attrs, [ts], [value])

    def counter(name: str, value: float, **attrs: str) -> SeriesData:
        return SeriesData(name, "By", "sum", True, attrs, [ts], [value])

    series = [
        gauge("system.cpu.utilization", 1.0 - cpu_busy, **{"cpu.mode": "idle"}),
        gauge("system.cpu.utilization", cpu_busy * 0.7, **{"cpu.mode": "user"}),
        gauge("system.cpu.utilization", cpu_busy * 0.3, **{"cpu.mode": "system"}),
        gauge("system.memory.utilization", 0.42, **{"system.memory.state": "used"}),
        gauge("system.memory.utilization", 0.58, **{"system.memory.state": "free"}),
        gauge("system.cpu.load_average.1m", 0.5),
        gauge("system.cpu.load_average.5m", 0.4),
        gauge(
            "system.filesystem.utilization",
            0.61,
            **{
                "system.device": "/dev/sda1",
                "system.filesystem.mountpoint": "/",
                "system.filesystem.state": "used",
            },
        ),
        counter("system.disk.io", ts * 1000.0, **{"system.device": "sda", "disk.io.direction": "read"}),
        counter("system.disk.io", ts * 500.0, **{"system.device": "sda", "disk.io.direction": "write"}),
        counter(
            "system.network.io", ts * 300.0, **{"system.device": "eth0", "network.io.direction": "receive"}
        ),
        counter(
            "system.network.io", ts * 200.0, **{"system.device": "eth0", "network.io.direction": "transmit"}
        ),
    ]
    return MetricBatch(f"tick-{host}-{ts}-{uuid.uuid4().hex[:6]}", host, {"host.name": host}, series)


# -- the browser side ---------------------------------------------------------------------------------


@dataclass
class PageGuard:
    """Everything a page did wrong: non-local requests, console errors, uncaught exceptions.

    ``allow`` takes a regex for console errors a test provokes on purpose (a 403 it asserts, a 404
    page it loads); anything else fails the test at teardown (``check``).
    """

    origin: str
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def attach(self, context: BrowserContext) -> None:
        context.route("**/*", self._route)
        context.on("console", self._console)
        context.on("weberror", lambda web_error: self._page_error(web_error.error))

    def _route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin or parts.scheme in ("data", "blob"):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort("blockedbyclient")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location.get('url', '')}")

    def _page_error(self, error: Error) -> None:
        self.page_errors.append(f"{error.name}: {error.message}")

    def problems(self) -> list[str]:
        def unexpected(text: str) -> bool:
            return not any(p.search(text) for p in self.allowed)

        out = [f"non-local request (blocked): {u}" for u in self.foreign]
        out += [f"console error: {t}" for t in self.console_errors if unexpected(t)]
        out += [f"page error: {t}" for t in self.page_errors if unexpected(t)]
        return out


def add_session(context: BrowserContext, base_url: str, session: Session) -> None:
    """Put ``session``'s cookie in the browser, as if it had signed in on this server."""
    context.add_cookies(
        [
            {
                "name": tokens.COOKIE,
                "value": session.cookie,
                "url": base_url,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )


def open_live(page: Page, path: str) -> Response:
    """Load ``path`` and wait until its live stream answered (the page is subscribed): what a live
    test must wait for before making the change it expects to see. Returns the page's response."""

    def is_stream(r: Response) -> bool:
        return urlsplit(r.url).path == "/api/v1/stream" and r.status == 200

    with page.expect_response(is_stream, timeout=LIVE_TIMEOUT_MS):
        response = page.goto(path)
    assert response is not None and response.status == 200, f"GET {path}: {response and response.status}"
    return response


def mark_loaded(page: Page) -> str:
    """Tag the loaded document; ``still_loaded`` proves later that no reload or navigation happened."""
    mark = uuid.uuid4().hex
    page.evaluate("(mark) => { window.__testLoadMark = mark; }", mark)
    return mark


def still_loaded(page: Page, mark: str) -> bool:
    found: object = page.evaluate("() => window.__testLoadMark")
    return found == mark


def page_fetch(page: Page, method: str, path: str, csrf: str, body: dict[str, Any] | None = None) -> int:
    """``fetch`` from the page's own origin with its cookie and the CSRF header: what a button's
    htmx request would send, for asserting the API's answer to a role. Returns the status."""
    status: int = page.evaluate(
        """async ([method, path, csrf, body]) => {
            const r = await fetch(path, {method, credentials: "same-origin",
                headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"},
                body: body === null ? undefined : JSON.stringify(body)});
            return r.status;
        }""",
        [method, path, csrf, body],
    )
    return status


@contextmanager
def htmx_swap(page: Page, target: str, timeout_ms: float = LIVE_TIMEOUT_MS) -> Iterator[None]:
    """Wait, after the block, until htmx has settled new content into ``target`` (a CSS selector):
    a test that types into a fragment must type into the one swapped in, not the one it replaces.
    The response arriving is not enough: htmx swaps after it, in the page's own time."""
    flag = f"__swapped_{uuid.uuid4().hex}"
    page.evaluate(
        """([target, flag]) => document.body.addEventListener("htmx:afterSettle", (e) => {
            if (e.target instanceof Element && e.target.matches(target)) { window[flag] = true; }
        })""",
        [target, flag],
    )
    yield
    page.wait_for_function("(flag) => window[flag] === true", arg=flag, timeout=timeout_ms)


def until(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` (off the browser: store or receiver state) until true, bounded."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def screenshot(page: Page, test_name: str, suffix: str = "") -> Path:
    """Save the full page under ``test-output/screenshots/<test>[-suffix].png`` (repo root)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    path = SCREENSHOTS / (f"{safe}-{suffix}.png" if suffix else f"{safe}.png")
    page.screenshot(path=str(path), full_page=True)
    return path
