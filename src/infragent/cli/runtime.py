"""Building the long-running parts from Settings: shared by ``server``, ``responder``, ``up`` and ``demo``."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from infragent.actions.webhook import WebhookDispatcher
from infragent.config import Settings
from infragent.errors import ConfigError
from infragent.model import NO_ACTION
from infragent.outbound.policy import OutboundPolicy
from infragent.responder.executor import Executor
from infragent.responder.llm import LlmClient, build_llm_client
from infragent.responder.loop import Responder, ResponderConfig, default_worker_id
from infragent.responder.runbooks import DEFAULT_RUNBOOKS, Runbook, load_runbooks
from infragent.responder.step_file import load_step_runbooks
from infragent.responder.steps import StepRunbook
from infragent.store.base import Database
from infragent.store.run_store import SqlRunStore
from infragent.store.wakeup import Wakeup, start_watcher
from infragent.store.workqueue import SqlWorkQueue


def configure_logging(level: str, json_logs: bool = False) -> None:
    """Structured logs on services; plain readable ones for interactive commands."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.processors.TimeStamper(fmt="iso")],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level != "debug":  # migrations announce every plugin at info; only their problems matter here
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # "Running upgrade …" stays


#: What ``infragent up`` and ``infragent demo`` add to ``webhook_allowed_networks``: both run the
#: app that receives the commands on this machine, so its webhook is on loopback.
LOCAL_WEBHOOKS = "127.0.0.0/8"


def allowing_local_webhooks(settings: Settings) -> Settings:
    """``settings`` with webhooks to this machine allowed (``up``, ``demo``), said once in their banner."""
    if LOCAL_WEBHOOKS in settings.webhook_allowed_networks:
        return settings
    networks = (*settings.webhook_allowed_networks, LOCAL_WEBHOOKS)
    return settings.model_copy(update={"webhook_allowed_networks": networks})


def llm_from_settings(settings: Settings) -> LlmClient | None:
    if settings.llm_provider == "none":
        return None
    return build_llm_client(
        settings.llm_provider,
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
    )


@dataclass
class RunningResponder:
    responder: Responder
    thread: threading.Thread
    stop_event: threading.Event
    watchers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        self.stop_event.set()
        self.responder.wakeup.set()
        self.thread.join(10)
        for w in self.watchers:
            w.stop()
        self.responder.close()


def _dispatcher(settings: Settings) -> WebhookDispatcher:
    return WebhookDispatcher(
        policy=OutboundPolicy.from_cidrs(settings.webhook_allowed_networks),
        timeout_s=settings.webhook_timeout_s,
        retries=settings.webhook_retries,
    )


def load_all_runbooks(path: Path | None) -> tuple[list[Runbook], list[StepRunbook]]:
    """Today's single-action runbooks, or, for a file with at least one step runbook, every
    runbook of the file as steps (a single-action one as one ``act`` step): (single, steps)."""
    if path is None:
        return load_runbooks(None), []
    try:
        return load_runbooks(path), []
    except ConfigError:
        if not _has_steps(path):
            raise
    # a step runbook file: its own check names every problem at its line:column; a recovery
    # event that no step runbook matches still needs nothing (as with the built-in runbooks)
    recovered = [rb for rb in DEFAULT_RUNBOOKS if rb.action == NO_ACTION]
    return recovered, load_step_runbooks(path)


def _has_steps(path: Path) -> bool:
    try:
        return "steps" in path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def start_responder(
    settings: Settings, store: Database, wakeup: Wakeup, *, watch: bool = True
) -> RunningResponder:
    """Start a responder thread; with ``watch`` it also listens for events stored by other processes."""
    runbooks, step_runbooks = load_all_runbooks(settings.runbooks_path)
    llm = llm_from_settings(settings)
    executor = None
    if step_runbooks:
        executor = Executor(
            SqlRunStore(
                store,
                kill_switch=settings.responder_kill_switch,
                budget=(settings.budget_max_actions, settings.budget_window_s),
                breaker=(settings.breaker_share, settings.breaker_min_hosts),
            ),
            _dispatcher(settings),
            runbooks=step_runbooks,
            worker=default_worker_id(),
            llm=llm,
            lease_s=settings.run_lease_s,
            poll_s=settings.run_poll_s,
        )
    responder = Responder(
        SqlWorkQueue(store),
        _dispatcher(settings),
        runbooks=runbooks,
        step_runbooks=step_runbooks,
        executor=executor,
        llm=llm,
        config=ResponderConfig(
            lease_s=settings.lease_s,
            cooldown_s=settings.cooldown_s,
            sweep_interval_s=settings.sweep_interval_s,
        ),
        wakeup=wakeup,
    )
    watchers = []
    if watch:
        watcher = start_watcher(settings.resolved_database_url, wakeup)
        if watcher is not None:
            watchers.append(watcher)
    thread, stop = responder.start()
    return RunningResponder(responder, thread, stop, watchers)


class AnnouncingServer(uvicorn.Server):
    """uvicorn that says where it listens once it does: with port 0 only the socket knows the port.

    ``announce`` gets the bound base URL (``http://host:port``) right after start-up, before any
    request is served; ``infragent server`` prints it, so whoever started it (a test, a supervisor)
    reads the port instead of probing for a free one first, a race on a busy machine.
    """

    def __init__(self, config: uvicorn.Config, announce: Callable[[str], None] | None = None) -> None:
        super().__init__(config)
        self._announce = announce

    @property
    def bound_port(self) -> int:
        """The port of the first listening socket; valid once ``started`` is true."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._announce is not None:
            host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
            self._announce(f"http://{host}:{self.bound_port}")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the open live streams first: an SSE response never ends by itself, and uvicorn waits
        for every response before the app's own shutdown runs, so Ctrl-C would hang while a
        dashboard is open. The browsers reconnect (to this server restarted, or another)."""
        services = getattr(getattr(self.config.app, "state", None), "services", None)
        stream = getattr(services, "stream", None)
        if stream is not None:
            stream.stop()
        await super().shutdown(sockets)


class ThreadedServer(AnnouncingServer):
    """uvicorn in a thread: signals stay with the main thread, which stops us via ``should_exit``."""

    def install_signal_handlers(self) -> None:
        pass
