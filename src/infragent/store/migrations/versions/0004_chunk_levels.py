"""metrics: chunk level (0 as ingested, 1 compacted) and a partial index of what is left to compact

Existing chunks become level 0, so the first compaction pass merges them per series and hour.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "metric_chunks", sa.Column("level", sa.SmallInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.create_index(
        "ix_metric_chunks_pending",
        "metric_chunks",
        ["start_ts"],
        unique=False,
        postgresql_where=sa.text("level = 0"),
        sqlite_where=sa.text("level = 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_metric_chunks_pending", table_name="metric_chunks")
    op.drop_column("metric_chunks", "level")
