"""events: a partial index of pending events per agent in arrival order, for oldest-first claims

``store/claims.claim`` orders free agents by their oldest pending event. ``ix_events_agent_pending``
(``agent_id, processed_at``) found an agent's pending events but not their order, so each pick read
every pending event of every agent (a noisy agent's whole backlog); ``(agent_id, received_at) WHERE
processed_at IS NULL`` answers "oldest pending event of this agent" with one seek, holds only
pending events, and serves every query the old index served (all ask for pending events), so the
old index is dropped.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_pending_agent_received",
        "events",
        ["agent_id", "received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )
    op.drop_index("ix_events_agent_pending", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_agent_pending", "events", ["agent_id", "processed_at"])
    op.drop_index("ix_events_pending_agent_received", table_name="events")
