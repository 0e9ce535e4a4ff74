"""``infragent metrics compact|retention``: the server's metric upkeep, run once by hand.

Why a command when the server runs both on a schedule (``server/maintenance.py``): after an upgrade
or an outage there may be days of raw chunks to compact, and an operator wants to watch that happen
(and how much it saves) or run it while the server is stopped. The command opens the database as
the server does (same settings, migrations applied) and is safe next to a running server: on
PostgreSQL only one compaction runs at a time (the other skips), on SQLite they take turns.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from typing import Annotated

import typer

from infragent.cli.options import ConfigOpt
from infragent.cli.options import settings_or_exit as _settings
from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.compaction import CompactionResult, compact
from infragent.store.sql import SqlStore

metrics_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Metric storage upkeep.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]
MB = 1_000_000


def _open(url: str) -> SqlStore:
    """The store, migrated; a database that cannot be opened ends the command with exit code 1."""
    import sqlalchemy as sa

    from infragent.errors import StoreError
    from infragent.store.sql import open_store

    try:
        return open_store(url)
    except (sa.exc.SQLAlchemyError, OSError, StoreError, ValueError) as exc:
        shown = url.split("@")[-1] if "@" in url else url  # no credentials on screen
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        typer.echo(f"infragent: cannot open the database {shown}: {reason}", err=True)
        raise typer.Exit(1) from exc


def _line(total: CompactionResult) -> str:
    rate = total.points / total.seconds if total.seconds > 0 else 0.0
    return (
        f"{total.hours:,} hours, {total.series_hours:,} series-hours, {total.points:,} points, "
        f"{total.bytes_in / MB:,.1f} MB -> {total.bytes_out / MB:,.1f} MB, {rate:,.0f} pts/s"
    )


@metrics_app.command("compact")
def compact_command(
    config: ConfigOpt = None,
    delay: Annotated[
        float | None,
        typer.Option("--delay", help="Compact hours that ended this many seconds ago (default: settings)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite every closed hour's raw chunks as one dense chunk per series (until none are left)."""
    from infragent.cli.runtime import configure_logging

    settings = _settings(config)
    configure_logging(settings.log_level)
    store = _open(settings.resolved_database_url)
    metrics = SqlMetricStore(store.engine)
    delay_s = settings.metrics_compact_delay_s if delay is None else delay
    out = sys.stderr if as_json else sys.stdout
    total = CompactionResult()
    started = time.perf_counter()
    shown = 0.0

    def progress(running: CompactionResult) -> None:
        nonlocal shown
        now = time.perf_counter()
        if now - shown >= 1.0:
            shown = now
            print(
                f"compacting: {_line(replace(total + running, seconds=now - started))}", file=out, flush=True
            )

    try:
        while True:
            result = compact(metrics, time.time(), delay_s=delay_s, progress=progress)
            total = total + result
            if not result.did_work:
                break
    finally:
        store.close()
    total = replace(total, seconds=time.perf_counter() - started)
    if as_json:
        ratio = total.bytes_in / total.bytes_out if total.bytes_out else None
        rate = total.points / total.seconds if total.seconds > 0 else 0.0
        typer.echo(json.dumps({**asdict(total), "points_per_s": rate, "ratio": ratio}))
    elif total.did_work:
        ratio = total.bytes_in / total.bytes_out if total.bytes_out else 0.0
        typer.echo(
            f"compacted {_line(total)}; {total.chunks_in:,} chunks -> {total.chunks_out:,}, "
            f"{ratio:.1f}x smaller, in {total.seconds:.1f} s"
        )
    else:
        typer.echo("nothing to compact")


@metrics_app.command("retention")
def retention_command(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Drop raw chunks past retention once (archiving their hourly rollups), as the server does hourly."""
    from infragent.cli.runtime import configure_logging

    settings = _settings(config)
    configure_logging(settings.log_level)
    store = _open(settings.resolved_database_url)
    try:
        result = SqlMetricStore(store.engine).apply_retention(time.time())
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(asdict(result)))
    else:
        typer.echo(
            f"retention: {result.deleted_chunks:,} chunks removed, "
            f"{result.dropped_partitions} day partitions dropped"
        )
