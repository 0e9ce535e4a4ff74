"""``infragent schedules list|add|enable|disable|remove``: scheduled runbooks from the server's shell.

Why a CLI besides the API: a provisioning script sets up the nightly checks of a new machine without
minting a key, and the person on call switches a schedule off before maintenance from the machine
itself. Like ``infragent notify``, it works on the configured database (same settings, migrations
applied) and is safe next to a running server: the servers' schedulers see a change at their next
tick. The validation is the API's (``store/schedule_specs.py``, ``store/schedules.py``); the
runbooks known are those of the configured ``runbooks_path``; every change is audited with actor
``cli``.

``--client``: the tenant's id; it may be left out on a server with one tenant. Exit codes: 0 done,
1 refused (no such schedule, a name taken), 2 bad usage or input (the field at fault is named).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from infragent.cli.notify import USAGE, ClientOpt, _client, _fail, _open
from infragent.cli.options import ConfigOpt, settings_or_exit
from infragent.errors import ConfigError
from infragent.server.scheduler import load_runbooks
from infragent.store import schedules as store
from infragent.store.schedule_specs import ScheduleError, spec_doc

schedules_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Scheduled runbooks: cron, interval or once (docs/runbooks.md).",
)

ACTOR = "cli"
NameArg = Annotated[str, typer.Argument(help="The schedule's name or id.")]


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _refused(exc: ScheduleError) -> typer.Exit:
    return _fail(str(exc), USAGE if exc.status == 422 else 1)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _fail(f"--label {pair!r}: write name=value", USAGE)
        labels[name] = value
    return labels


@schedules_app.command("list")
def list_command(client: ClientOpt = None, config: ConfigOpt = None) -> None:
    """The tenant's schedules: name, on/off, next run (UTC), runbook, spec in words, last run."""
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            found = store.list_schedules(conn, client_id)
    finally:
        db.close()
    if not found:
        typer.echo("no schedule yet: add one with `infragent schedules add`")
    for s in found:
        state = "on " if s.enabled else "off"
        last = "never"
        if s.last_run is not None:
            last = f"{_when(s.last_run.due_at)} run {s.last_run.run_id or 'failed (see the audit log)'}"
        next_run = _when(s.next_run_at)
        typer.echo(f"{s.name:<24} {state} next {next_run:<20} {s.runbook:<24} {s.described}  last: {last}")


@schedules_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="A name unique in the tenant.")],
    runbook: Annotated[str, typer.Option("--runbook", help="A step runbook of runbooks_path.")],
    cron: Annotated[str | None, typer.Option("--cron", help='5 fields, e.g. "30 2 * * 1-5".')] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="An interval: 15m, 1h30m (at least 1m).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Where --every counts from (ISO 8601).")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Once, at this ISO 8601 time.")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="IANA zone (default UTC).")] = None,
    missed: Annotated[
        str, typer.Option("--missed", help="A run missed while no server ran: skip or run_once.")
    ] = "skip",
    node: Annotated[str | None, typer.Option("--node", help="The host (node id) the run acts on.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="name=value, repeatable.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it switched off.")] = False,
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a schedule: exactly one of --cron, --every or --at."""
    settings = settings_or_exit(config)
    try:
        known = load_runbooks(settings)
    except ConfigError as exc:
        raise _fail(str(exc), USAGE) from None
    labels = _labels(label or [])
    try:
        doc = spec_doc(cron=cron, every=every, start=start, at=at, tz=timezone)
    except ScheduleError as exc:
        raise _refused(exc) from None
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            created = store.create_schedule(
                conn,
                client_id,
                name=name,
                runbook=runbook,
                spec=doc,
                tz=timezone,
                missed=missed,
                node_id=node,
                labels=labels,
                enabled=not disabled,
                known_runbooks=known,
                now=time.time(),
                actor=ACTOR,
            )
    except ScheduleError as exc:
        raise _refused(exc) from None
    finally:
        db.close()
    typer.echo(
        f"added {created.name} ({created.id}): {created.described}; next run {_when(created.next_run_at)}"
    )


def _switch(ident: str, enabled: bool, client: str | None, config: ConfigOpt) -> None:
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            changed = store.set_enabled(conn, client_id, ident, enabled, now=time.time(), actor=ACTOR)
    except ScheduleError as exc:
        raise _refused(exc) from None
    finally:
        db.close()
    state = f"on; next run {_when(changed.next_run_at)}" if enabled else "off"
    typer.echo(f"{changed.name}: {state}")


@schedules_app.command("enable")
def enable_command(name: NameArg, client: ClientOpt = None, config: ConfigOpt = None) -> None:
    """Switch a schedule on: its next run is counted from now (missed runs are not made up)."""
    _switch(name, True, client, config)


@schedules_app.command("disable")
def disable_command(name: NameArg, client: ClientOpt = None, config: ConfigOpt = None) -> None:
    """Switch a schedule off: no run until it is switched on again."""
    _switch(name, False, client, config)


@schedules_app.command("remove")
def remove_command(name: NameArg, client: ClientOpt = None, config: ConfigOpt = None) -> None:
    """Delete a schedule; the runs it started stay."""
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            store.delete_schedule(conn, client_id, name, now=time.time(), actor=ACTOR)
    except ScheduleError as exc:
        raise _refused(exc) from None
    finally:
        db.close()
    typer.echo(f"removed {name}")
