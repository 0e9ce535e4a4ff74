"""``infragent notify channels list|test|deliveries|retry`` and ``infragent silences add|list|expire``:
notifications from the server's shell.

Why a CLI besides the API and the pages: the person on call at a terminal silences a host before a
reboot, checks that a channel still works after a token rotation, and re-sends what died while the
receiver was down, without minting a key. Like ``infragent users``, it works on the configured
database (same settings, migrations applied) and is safe next to a running server: a silence or a
retried delivery is seen by the pipeline at its next tick. The validation is ``notify/config.py``'s,
the same as the API's; every change is audited with actor ``cli`` (a silence: ``--author``).

``--client``: the tenant's id; it may be left out on a server with one tenant. Exit codes: 0 done,
1 refused or failed (a test send that did not deliver), 2 bad usage or input (a bad matcher is named).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from infragent.cli.options import ConfigOpt, settings_or_exit
from infragent.notify import config as notify_config
from infragent.notify import testsend
from infragent.notify.channels.base import deps_from_settings
from infragent.notify.errors import NotifyConfigError, NotifyError
from infragent.notify.model import Silence
from infragent.store import access, notify_reads
from infragent.store import notify_config as store
from infragent.store.sql import SqlStore

notify_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Notification channels and deliveries (docs/notifications.md).",
)
channels_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The tenant's channels.")
notify_app.add_typer(channels_app, name="channels")
silences_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Silences: mute matching incidents for a while."
)

ACTOR = "cli"
REFUSED, USAGE = 1, 2

ClientOpt = Annotated[
    str | None, typer.Option("--client", help="The tenant's client id (default: the only one).")
]


def _fail(message: str, code: int = REFUSED) -> typer.Exit:
    typer.echo(f"infragent: {message}", err=True)
    return typer.Exit(code)


def _open(config: ConfigOpt) -> SqlStore:
    """The configured store, migrated; one that cannot be opened ends the command with exit code 1."""
    import sqlalchemy as sa

    from infragent.errors import StoreError
    from infragent.store.sql import open_store

    url = settings_or_exit(config).resolved_database_url
    try:
        return open_store(url)
    except (sa.exc.SQLAlchemyError, OSError, StoreError, ValueError) as exc:
        shown = url.split("@")[-1] if "@" in url else url  # no credentials on screen
        raise _fail(f"cannot open the database {shown}: {exc}") from exc


def _client(db: SqlStore, client: str | None) -> str:
    """The tenant named, or the server's only one; else exit 2 listing the tenants to choose from."""
    with db.read() as conn:
        if client:
            if client not in access.tenant_names(conn, [client]):
                raise _fail(f"no tenant has the id {client!r}", USAGE)
            return client
        only = access.only_tenant(conn)
        known = access.tenants(conn)
    if only is not None:
        return only
    if not known:
        raise _fail("the server has no tenant yet", USAGE)
    listed = "\n".join(f"  {client_id}  {name}" for client_id, name in known)
    raise _fail(f"the server has several tenants; choose one with --client:\n{listed}", USAGE)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@channels_app.command("list")
def channels_list(client: ClientOpt = None, config: ConfigOpt = None) -> None:
    """The tenant's channels: name, kind, on/off, id, settings and the names of the secrets set."""
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            found = store.list_channels(conn, client_id)
    finally:
        db.close()
    if not found:
        typer.echo("no channel yet: add one with POST /api/v1/notify/channels or on the dashboard")
    for ch in found:
        shown = store.public_channel(ch)
        state = "on " if ch.enabled else "off"
        secrets = ",".join(shown["secrets_set"]) or "-"
        typer.echo(
            f"{ch.name:<24} {ch.kind:<10} {state} {ch.id}  settings={shown['settings']} secrets={secrets}"
        )


@notify_app.command("test")
def test_command(
    channel: Annotated[str, typer.Argument(help="The channel's name or id.")],
    client: ClientOpt = None,
    preview: Annotated[bool, typer.Option("--preview", help="Print the message; send nothing.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Send one test message to CHANNEL now (no retry) and print what the receiver said; exit 1
    unless it was delivered. With --preview, print the rendered message instead."""
    settings = settings_or_exit(config)
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            by_name = store.channels_by_name(conn, client_id, [channel])
            found = by_name.get(channel) or next(
                (c for c in store.list_channels(conn, client_id) if c.id == channel), None
            )
    finally:
        db.close()
    if found is None:
        raise _fail(f"no channel named {channel!r} in tenant {client_id}", USAGE)
    now = time.time()
    if preview:
        message = testsend.test_message(found, now=now, public_url=settings.public_url)
        typer.echo(f"title: {message.title}\n\n{message.text}")
        if message.html:
            typer.echo(f"\n--- html ---\n{message.html}")
        return
    if found.kind == "inapp":
        raise _fail(
            "an in-app channel writes to users' inboxes: test it from the dashboard or the API signed in"
        )
    deps = deps_from_settings(settings)
    try:
        result = testsend.test_send(found, deps, now=now, public_url=settings.public_url)
    finally:
        deps.close()
    code = f" (status {result.status_code})" if result.status_code is not None else ""
    typer.echo(f"{found.name}: {result.outcome}{code}" + (f": {result.error}" if result.error else ""))
    if result.outcome != "delivered":
        raise typer.Exit(REFUSED)


@notify_app.command("deliveries")
def deliveries_command(
    dead: Annotated[bool, typer.Option("--dead", help="Only the dead letters.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=notify_reads.MAX_PAGE)] = 20,
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The latest deliveries (newest first): when, status, channel, attempts, what, last error."""
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            views, _ = notify_reads.list_deliveries(
                conn, client_id, status="dead" if dead else None, limit=limit
            )
    finally:
        db.close()
    if not views:
        typer.echo("no dead letter" if dead else "no delivery yet")
    for d in views:
        channel = d.channel_name or f"(deleted {d.channel_id[:8]})"
        error = f"  last error: {d.last_error}" if d.last_error else ""
        typer.echo(
            f"{_when(d.created_at)}  {d.status:<9} {channel:<20} {d.kind:<12} "
            f"attempts={d.attempts}  {d.id}  {d.title}{error}"
        )


@notify_app.command("retry")
def retry_command(
    delivery_id: Annotated[str, typer.Argument(help="The dead delivery's id.")],
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Send a dead delivery again (same id): pending now, with notify_retry_for_s to succeed."""
    settings = settings_or_exit(config)
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            view = notify_reads.retry_delivery(
                conn,
                client_id,
                delivery_id,
                actor=ACTOR,
                now=time.time(),
                retry_for_s=settings.notify_retry_for_s,
            )
    except NotifyError as exc:
        raise _fail(exc.message) from None
    finally:
        db.close()
    typer.echo(f"delivery {view.id} to {view.channel_name or view.channel_id} is pending again")


# -- silences ----------------------------------------------------------------------------------------


def _silence_line(s: Silence, now: float) -> str:
    state = "expired" if s.ends_at <= now else "pending" if s.starts_at > now else "active"
    matchers = ", ".join(notify_config.matcher_text(m) for m in s.matchers)
    when = f"{_when(s.starts_at)} → {_when(s.ends_at)}"
    return f"{s.id}  {state:<7} {when}  {{{matchers}}}  by {s.created_by}: {s.comment}"


def _problems(exc: NotifyConfigError, given: list[str]) -> str:
    """The parser's problems in the CLI's terms: ``matchers[1]`` is the second ``--match``."""
    lines = []
    for path, message in exc.problems:
        if path.startswith("matchers[") and "]" in path:
            index = int(path[len("matchers[") : path.index("]")])
            where = f"--match {given[index]!r}" if index < len(given) else "--match"
        else:
            where = {"duration": "--for", "matchers": "--match", "comment": "--comment"}.get(path, path)
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


@silences_app.command("add")
def silences_add(
    match: Annotated[
        list[str], typer.Option("--match", help='A label matcher: host="web-1", alertname=~"Disk.*".')
    ],
    for_: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (required).")],
    author: Annotated[str, typer.Option("--author", help="Who silences (recorded).")] = ACTOR,
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Silence every incident matching all --match, from now for --for."""
    now = time.time()
    try:
        matchers, starts_at, ends_at, text = notify_config.parse_silence(
            {"matchers": list(match), "duration": for_, "comment": comment}, now
        )
    except NotifyConfigError as exc:
        raise _fail(_problems(exc, list(match)), USAGE) from None
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            silence = store.create_silence(
                conn,
                client_id,
                matchers=matchers,
                starts_at=starts_at,
                ends_at=ends_at,
                created_by=author,
                comment=text,
                now=now,
            )
    finally:
        db.close()
    typer.echo(_silence_line(silence, now))


@silences_app.command("list")
def silences_list(
    all_: Annotated[bool, typer.Option("--all", help="Expired ones too.")] = False,
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The active and pending silences (with --all, the expired ones too)."""
    now = time.time()
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.read() as conn:
            found = store.list_silences(conn, client_id, state=None, now=now, limit=1000)
    finally:
        db.close()
    shown = [s for s in found if all_ or s.ends_at > now]
    if not shown:
        typer.echo("no silence")
    for s in shown:
        typer.echo(_silence_line(s, now))


@silences_app.command("expire")
def silences_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence's id.")],
    client: ClientOpt = None,
    config: ConfigOpt = None,
) -> None:
    """End a silence now."""
    now = time.time()
    db = _open(config)
    try:
        client_id = _client(db, client)
        with db.write() as conn:
            silence = store.expire_silence(conn, client_id, silence_id, actor=ACTOR, now=now)
    except NotifyError as exc:
        raise _fail(exc.message) from None
    finally:
        db.close()
    typer.echo(_silence_line(silence, now))
