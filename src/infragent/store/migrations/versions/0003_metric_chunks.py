"""metrics: chunks (by day on PostgreSQL), 1-hour rollups kept past retention, retention per tenant

Existing samples are converted to chunks, then ``metric_samples`` is dropped. On PostgreSQL the
day partitions are created in the ``metric_partitions`` schema (see ``store/metrics/pg.py``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from infragent.store.metrics.chunk_rows import split_batch

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLUSH_POINTS = 200_000
_chunks = sa.table(
    "metric_chunks",
    *(
        sa.column(c)
        for c in ("series_id", "start_ts", "end_ts", "n", "vmin", "vmax", "vsum", "vlast", "data")
    ),
)


def _series_samples(bind: sa.Connection) -> Iterator[tuple[int, list[float], list[float]]]:
    sid: int | None = None
    ts: list[float] = []
    values: list[float] = []
    rows = bind.execute(sa.text("SELECT series_id, ts, value FROM metric_samples ORDER BY series_id, ts"))
    for row in rows:
        if row[0] != sid:
            if sid is not None:
                yield sid, ts, values
            sid, ts, values = int(row[0]), [], []
        ts.append(float(row[1]))
        values.append(float(row[2]))
    if sid is not None:
        yield sid, ts, values


def _convert(bind: sa.Connection) -> None:
    """Row-per-sample to chunks, a few hundred thousand points at a time."""
    from infragent.store.metrics.pg import ensure_partitions

    pending: list[tuple[int, list[float], list[float]]] = []

    def flush() -> None:
        rows = split_batch(pending)
        if bind.dialect.name == "postgresql":
            ensure_partitions(bind, {int(r.start_ts // 86400) for r in rows})
        if rows:
            bind.execute(_chunks.insert(), [_row(r) for r in rows])
        pending.clear()

    for item in list(_series_samples(bind)):  # read fully first: the same connection then inserts
        pending.append(item)
        if sum(len(p[1]) for p in pending) >= _FLUSH_POINTS:
            flush()
    flush()


def _row(r: object) -> dict[str, object]:
    names = ("series_id", "start_ts", "end_ts", "n", "vmin", "vmax", "vsum", "vlast", "data")
    return {n: getattr(r, n) for n in names}


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "metric_chunks",
        sa.Column("series_id", Id, nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("end_ts", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("vmin", sa.Float(), nullable=False),
        sa.Column("vmax", sa.Float(), nullable=False),
        sa.Column("vsum", sa.Float(), nullable=False),
        sa.Column("vlast", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        postgresql_partition_by="RANGE (start_ts)",
    )
    op.create_index("ix_metric_chunks_series_start", "metric_chunks", ["series_id", "start_ts"], unique=False)
    op.create_table(
        "metric_rollups_1h",
        sa.Column("series_id", Id, autoincrement=False, nullable=False),
        sa.Column("bucket", sa.Float(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("vmin", sa.Float(), nullable=False),
        sa.Column("vmax", sa.Float(), nullable=False),
        sa.Column("vsum", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.Column("vlast", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "bucket"),
    )
    op.create_table(
        "metric_retention",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("raw_days", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("client_id"),
    )
    if bind.dialect.name == "postgresql":
        from infragent.store.metrics.pg import ensure_partitions

        ensure_partitions(bind, [])  # the partitions schema, even before the first write
    _convert(bind)
    op.drop_index("ix_metric_samples_series_ts", table_name="metric_samples")
    op.drop_table("metric_samples")


def downgrade() -> None:
    from infragent.store.metrics.chunks import decode_chunk

    bind = op.get_bind()
    op.create_table(
        "metric_samples",
        sa.Column("series_id", Id, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["series_id"], ["metric_series.id"]),
    )
    op.create_index("ix_metric_samples_series_ts", "metric_samples", ["series_id", "ts"], unique=False)
    samples = sa.table("metric_samples", sa.column("series_id"), sa.column("ts"), sa.column("value"))
    for sid, data in bind.execute(sa.text("SELECT series_id, data FROM metric_chunks")).all():
        ts, values = decode_chunk(bytes(data))
        rows = [
            {"series_id": sid, "ts": t, "value": v} for t, v in zip(ts.tolist(), values.tolist(), strict=True)
        ]
        bind.execute(samples.insert(), rows)
    op.drop_table("metric_retention")
    op.drop_table("metric_rollups_1h")
    op.drop_index("ix_metric_chunks_series_start", table_name="metric_chunks")
    op.drop_table("metric_chunks")
