"""``infragent``: server, responder, up and version here; ``main`` registers the other command groups.

Why registration in ``main`` rather than by importing a module for its decorators: what the CLI
offers is then readable in one place, and no command module imports this one (no import cycle).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Annotated

import typer
import uvicorn

from infragent import __version__
from infragent.auth import accounts
from infragent.cli import agent, demo, metrics, notify, rules, runbooks, schedules, users
from infragent.cli.options import ConfigOpt, settings_or_exit
from infragent.errors import ConfigError
from infragent.server.app import create_app
from infragent.store.sql import open_store
from infragent.store.wakeup import Wakeup

app = typer.Typer(no_args_is_help=True, add_completion=False, help="InfrAgent: detect failures and fix them.")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def server(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Run the HTTP server alone (ingest, API, health); prints where it listens (``--port 0``: any)."""
    import contextlib

    from infragent.cli.runtime import AnnouncingServer, configure_logging

    settings = settings_or_exit(config, host=host, port=port)
    configure_logging(settings.log_level, json_logs=True)
    srv = AnnouncingServer(
        uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_config=None),
        announce=lambda url: typer.echo(f"InfrAgent {__version__} is up at {url}"),
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, re-raised by uvicorn once it has shut down
        srv.run()
    if not srv.started:
        raise typer.Exit(3)  # uvicorn.run's start-up failure code (e.g. the port is taken)


@app.command()
def responder(config: ConfigOpt = None) -> None:
    """Run the responder alone; it wakes on new events (LISTEN/NOTIFY or SQLite change polling)."""
    from infragent.cli.runtime import configure_logging, start_responder

    settings = settings_or_exit(config)
    configure_logging(settings.log_level, json_logs=True)
    store = open_store(settings.resolved_database_url)
    running = start_responder(settings, store, Wakeup())
    try:
        _wait_for_signal()
    finally:
        running.stop()
        store.close()


@app.command()
def up(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    no_agent: Annotated[
        bool, typer.Option("--no-agent", help="Do not start an agent for this machine.")
    ] = False,
    agent_port: Annotated[int, typer.Option(help="The local agent's health/metrics port.")] = 8471,
) -> None:
    """Server, responder and an agent for this machine; SQLite unless INFRAGENT_DATABASE_URL is set."""
    from infragent.cli.local_agent import local_credentials, start_local_agent, stop_local_agent
    from infragent.cli.runtime import (
        ThreadedServer,
        allowing_local_webhooks,
        configure_logging,
        start_responder,
    )

    # one machine: the apps whose webhooks the responder calls run here too (docs/configuration.md)
    settings = allowing_local_webhooks(settings_or_exit(config, host=host, port=port))
    configure_logging(settings.log_level)
    store = open_store(settings.resolved_database_url)
    wakeup = Wakeup()
    running = start_responder(settings, store, wakeup)
    srv = ThreadedServer(
        uvicorn.Config(
            create_app(settings, store=store, on_event=wakeup.set),
            host=settings.host,
            port=settings.port,
            log_config=None,
        )
    )
    thread = threading.Thread(target=srv.run, name="http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not srv.started:
        typer.echo(f"infragent: the server did not start on {settings.host}:{settings.port}", err=True)
        running.stop()
        raise typer.Exit(1)
    if settings.port == 0:  # the kernel chose: what is printed and given to the agent says which port
        settings = settings.model_copy(update={"port": srv.bound_port})
    store_url = store.engine.url.render_as_string(hide_password=True)
    typer.echo(f"InfrAgent {__version__} is up at {settings.base_url}  (store: {store_url})")
    typer.echo(f"  dashboard: {settings.base_url}/   API docs: {settings.base_url}/docs")
    typer.echo(f"  health: {settings.base_url}/health/ready   Ctrl-C stops")
    allowed = ", ".join(settings.webhook_allowed_networks)
    typer.echo(f"  webhooks may reach public addresses and {allowed} (webhook_allowed_networks)")
    if accounts.user_count(store) == 0:  # the dashboard needs a first admin (docs/security.md)
        typer.echo(
            f"  No user yet: open {settings.base_url}/setup or run `infragent users create --admin EMAIL`"
        )
    agent = None
    if not no_agent:
        creds = local_credentials(settings, store, time.time())
        agent = start_local_agent(settings, creds, agent_port)
        health = f"http://127.0.0.1:{agent_port}/health"
        if agent_port == 0:  # the agent publishes the port it got once it serves (docs/agent.md)
            from infragent.agent.local_api import read_address

            agent_dir = settings.data_dir / "agent"  # start_local_agent's INFRAGENT_AGENT_DATA_DIR
            health = f"the address in {agent_dir / 'local-api.json'}"
            deadline = time.monotonic() + 20
            while agent.poll() is None and time.monotonic() < deadline:
                published = read_address(agent_dir)
                if published is not None and published.pid == agent.pid:
                    health = f"{published.url}/health"
                    break
                time.sleep(0.05)
        typer.echo(f"  agent for this machine: pid {agent.pid}, health at {health}")
        typer.echo(f"  its API key (to read its data) is in {settings.data_dir / 'local-agent.json'}")
    sys.stdout.flush()
    try:
        _wait_for_signal()
    finally:
        if agent is not None:
            stop_local_agent(agent)
        srv.should_exit = True
        thread.join(10)
        running.stop()
        store.close()


def main() -> None:
    app.add_typer(agent.agent_app, name="agent")
    app.add_typer(metrics.metrics_app, name="metrics")
    app.add_typer(rules.rules_app, name="rules")
    app.add_typer(runbooks.runbooks_app, name="runbooks")
    app.add_typer(users.users_app, name="users")
    app.add_typer(notify.notify_app, name="notify")
    app.add_typer(notify.silences_app, name="silences")
    app.add_typer(schedules.schedules_app, name="schedules")
    app.command()(demo.demo)
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"infragent: {exc}", err=True)
        sys.exit(2)
