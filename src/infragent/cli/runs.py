"""``infragent runs list|show|cancel``, ``infragent approvals list|approve|reject`` and
``infragent killswitch on|off|status``: runbook runs and their guardrails from the server's shell.

Why a CLI besides the API and the pages: the person on call at a terminal stops every automatic
action at once during an outage (the kill switch), sees what a runbook is doing, and answers an
approval, without minting a key. Like ``infragent notify``, it works on the configured database and
is safe next to a running server: a cancel or an answer wakes the run (``next_at``), and the
executor that holds it acts at its next poll. The store functions are the API's
(``store/run_admin.py``), so the refusals are the same (an answer is given once; an expired request
is refused and recorded as expired). Changes are audited with actor ``cli:<--by>``.

``--client``: the tenant's id; it may be left out on a server with one tenant. Exit codes: 0 done,
1 refused (not found, ended, answered already, expired), 2 bad usage or input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from infragent.cli.notify import USAGE, ClientOpt, _client, _fail, _open, _when
from infragent.cli.options import ConfigOpt, settings_or_exit
from infragent.store import guard_reads, run_admin, run_reads
from infragent.store.run_errors import RunError
from infragent.store.run_reads import RunView

runs_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Runbook runs (docs/responder.md).")
approvals_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Approval requests: a person's yes before a command runs.",
)
killswitch_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The global kill switch: stop every automatic action."
)

ByOpt = Annotated[str, typer.Option("--by", help="Who is acting, for the audit log (actor cli:<by>).")]
STATUSES = ("queued", "running", "waiting_approval", "completed", "failed", "cancelled")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")


def _refused(exc: RunError) -> typer.Exit:
    return _fail(exc.message)


def _line(v: RunView) -> str:
    where = (
        f"incident {v.incident_id}"
        if v.incident_id
        else (f"schedule {v.schedule_id}" if v.schedule_id else "-")
    )
    now = ""
    if v.current is not None:
        now = f"  at {v.current.step_id} ({v.current.kind}) waiting for {v.current.waiting_for}"
    dry = " dry-run" if v.dry_run else ""
    host = v.node_id or "-"
    return f"{_when(v.created_at)}  {v.status:<16} {v.runbook:<24} {host:<16} {where}  {v.id}{dry}{now}"


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option("--status", help=f"One of {', '.join(STATUSES)}.")] = None,
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident's runs.")] = None,
    runbook: Annotated[str | None, typer.Option("--runbook", help="Only this runbook's runs.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=run_reads.MAX_PAGE)] = 20,
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The latest runs (newest first): when, status, runbook, host, incident, id, the step in progress."""
    if status is not None and status not in STATUSES:
        raise _fail(f"--status: {status!r} is not one of {', '.join(STATUSES)}", USAGE)
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            views = run_reads.list_runs(
                conn, client_id, incident_id=incident, status=status, runbook=runbook, limit=limit
            )
    finally:
        db.close()
    if not views:
        typer.echo("no run yet")
    for v in views:
        typer.echo(_line(v))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """One run: its status, the step in progress and every step that ended, with its command."""
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            v = run_reads.get_run(conn, client_id, run_id)
    except RunError as exc:
        raise _refused(exc) from None
    finally:
        db.close()
    typer.echo(_line(v))
    if v.outcome:
        mttr = f"  mttr={v.mttr_s:.1f}s" if v.mttr_s is not None else ""
        typer.echo(f"  ended {_when(v.ended_at)}: {v.outcome}{mttr}  {v.summary}")
    if v.cancel_requested_by:
        typer.echo(f"  cancel requested by {v.cancel_requested_by}: {v.cancel_reason or ''}")
    for s in v.steps:
        command = f" {s.action} {s.target or ''}".rstrip() if s.action else ""
        typer.echo(f"  #{s.seq} {s.step_id} ({s.kind}{command}): {s.outcome}  {s.detail}")
    if v.current is not None:
        until = f" until {_when(v.current.deadline)}" if v.current.deadline is not None else ""
        typer.echo(f"  #{v.current.seq} {v.current.step_id}: waiting for {v.current.waiting_for}{until}")


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log and the run.")] = "",
    by: ByOpt = "operator",
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ask for the run to be cancelled; the executor ends it at its next poll."""
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            v = run_admin.cancel_run(conn, client_id, run_id, f"cli:{by}", reason, time.time())
    except RunError as exc:
        raise _refused(exc) from None
    finally:
        db.close()
    typer.echo(f"cancel requested for run {v.id} ({v.status}) by {v.cancel_requested_by}")


@approvals_app.command("list")
def approvals_list(
    status: Annotated[
        str | None, typer.Option("--status", help=f"One of {', '.join(APPROVAL_STATUSES)}.")
    ] = None,
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident's requests.")] = None,
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approval requests (newest first): status, command, host, time left, id."""
    if status is not None and status not in APPROVAL_STATUSES:
        raise _fail(f"--status: {status!r} is not one of {', '.join(APPROVAL_STATUSES)}", USAGE)
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            views = run_reads.list_approvals(
                conn, client_id, time.time(), status=status, incident_id=incident
            )
    finally:
        db.close()
    if not views:
        typer.echo("no approval request")
    for a in views:
        left = f"{a.seconds_left:.0f}s left" if a.status == "pending" else f"by {a.decided_by}"
        command = f"{a.action} {a.target or ''}".rstrip()
        typer.echo(f"{a.status:<9} {command:<24} {a.node_id or '-':<16} {left:<20} {a.id}  {a.reason}")


def _decide(
    approval_id: str, approve: bool, note: str, by: str, client: str | None, config: Path | None
) -> None:
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            decided = run_admin.decide_approval(
                conn, client_id, approval_id, f"cli:{by}", approve, note, time.time()
            )
        a = decided.checked()
    except RunError as exc:
        raise _refused(exc) from None
    finally:
        db.close()
    typer.echo(f"approval {a.id}: {a.status} by {a.decided_by} ({a.action} {a.target or ''} on {a.node_id})")


NoteOpt = Annotated[str, typer.Option("--note", help="A note kept with the answer.")]
ApprovalArg = Annotated[str, typer.Argument(help="The approval request's id.")]


@approvals_app.command("approve")
def approvals_approve(
    approval_id: ApprovalArg, note: NoteOpt = "", by: ByOpt = "operator", client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:  # fmt: skip
    """Approve the command: the run sends it (its guardrails are checked again first)."""
    _decide(approval_id, True, note, by, client, config)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: ApprovalArg, note: NoteOpt = "", by: ByOpt = "operator", client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:  # fmt: skip
    """Reject the command: it is never sent, and the run escalates."""
    _decide(approval_id, False, note, by, client, config)


def _switch(on: bool, reason: str, by: str, client: str | None, config: Path | None) -> None:
    setting = settings_or_exit(config).responder_kill_switch
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            switch = run_admin.set_kill_switch(
                conn, client_id, on, f"cli:{by}", reason, time.time(), setting=setting
            )
    finally:
        db.close()
    typer.echo(_describe(switch))


def _describe(s: guard_reads.KillSwitch) -> str:
    state = "ON: automatic actions are stopped" if s.on else "off: automatic actions may run"
    why = []
    if s.stored_on:
        why.append(f"thrown by {s.by} at {_when(s.at)}" + (f": {s.reason}" if s.reason else ""))
    if s.setting_on:
        why.append("the server setting responder_kill_switch is on")
    return f"kill switch {state}" + (f" ({'; '.join(why)})" if why else "")


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the audit log.")]


@killswitch_app.command("on")
def killswitch_on(
    reason: ReasonOpt = "", by: ByOpt = "operator", client: ClientOpt = None, config: ConfigOpt = None
) -> None:
    """Stop every automatic action of every tenant now (escalations still go out)."""
    _switch(True, reason, by, client, config)


@killswitch_app.command("off")
def killswitch_off(
    reason: ReasonOpt = "", by: ByOpt = "operator", client: ClientOpt = None, config: ConfigOpt = None
) -> None:
    """Release the stored kill switch (the server setting, if on, still holds)."""
    _switch(False, reason, by, client, config)


@killswitch_app.command("status")
def killswitch_status(config: ConfigOpt = None) -> None:
    """Whether automatic actions are stopped, by whom and why."""
    setting = settings_or_exit(config).responder_kill_switch
    db = _open(config)
    try:
        with db.read() as conn:
            switch = guard_reads.read_kill_switch(conn, setting)
    finally:
        db.close()
    typer.echo(_describe(switch))
