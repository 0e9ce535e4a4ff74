"""metrics: ``metric_hosts``, the fleet view's per-host row kept at write time (store/metrics/hosts.py)

Hosts already stored get their row from each series' newest chunk.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from infragent.store.metrics.hosts import backfill

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_hosts",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("cpu_ts", sa.Float(), nullable=True),
        sa.Column("cpu", sa.Float(), nullable=True),
        sa.Column("memory_ts", sa.Float(), nullable=True),
        sa.Column("memory", sa.Float(), nullable=True),
        sa.Column("filesystem_ts", sa.Float(), nullable=True),
        sa.Column("filesystem", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("client_id", "host"),
    )
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("metric_hosts")
