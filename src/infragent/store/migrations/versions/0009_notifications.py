"""notifications: channels, routing, silences, inhibition; the outbox (changes, groups with their
notification log, deliveries, attempts, threads, escalation steps); the in-app inbox

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

Json = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("detail", Json, nullable=False),
        sa.Column("processed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notify_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_changes_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        )

    op.create_table(
        "notify_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=True),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("route_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message", Json, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("deadline_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("suppressed_by", sa.String(length=200), nullable=True),
        sa.Column("cause", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "cause", "channel_id", name="uq_notify_deliveries_cause"),
    )
    with op.batch_alter_table("notify_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_deliveries_client_created", ["client_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_notify_deliveries_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "notify_escalations",
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("route_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "route_id", "step"),
    )
    op.create_table(
        "notify_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("route_id", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("group_labels", Json, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_flush_at", sa.Float(), nullable=True),
        sa.Column("sent_firing", Json, nullable=False),
        sa.Column("sent_resolved", Json, nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("flush_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "route_id", "group_key", name="uq_notify_groups_key"),
    )
    with op.batch_alter_table("notify_groups", schema=None) as batch_op:
        batch_op.create_index("ix_notify_groups_due", ["next_flush_at"], unique=False)

    op.create_table(
        "notify_threads",
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "incident_id"),
    )
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("read_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id", "user_id", name="uq_inbox_delivery_user"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_user_client", ["user_id", "client_id", "read_at"], unique=False)

    op.create_table(
        "notify_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notify_deliveries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notify_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notify_attempts_delivery_id"), ["delivery_id"], unique=False)

    op.create_table(
        "notify_channels",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("secrets", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "name", name="uq_notify_channels_name"),
    )
    op.create_table(
        "notify_group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["notify_groups.id"],
        ),
        sa.PrimaryKeyConstraint("group_id", "incident_id"),
    )
    with op.batch_alter_table("notify_group_members", schema=None) as batch_op:
        batch_op.create_index("ix_notify_group_members_incident", ["incident_id"], unique=False)

    op.create_table(
        "notify_inhibit_rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", Json, nullable=False),
        sa.Column("target", Json, nullable=False),
        sa.Column("equal", Json, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notify_inhibit_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notify_inhibit_rules_client_id"), ["client_id"], unique=False)

    op.create_table(
        "notify_routing",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("tree", Json, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "notify_silences",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("matchers", Json, nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("expired_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notify_silences", schema=None) as batch_op:
        batch_op.create_index("ix_notify_silences_client_ends", ["client_id", "ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notify_silences", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_silences_client_ends")

    op.drop_table("notify_silences")
    op.drop_table("notify_routing")
    with op.batch_alter_table("notify_inhibit_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_inhibit_rules_client_id"))

    op.drop_table("notify_inhibit_rules")
    with op.batch_alter_table("notify_group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_group_members_incident")

    op.drop_table("notify_group_members")
    op.drop_table("notify_channels")
    with op.batch_alter_table("notify_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_attempts_delivery_id"))

    op.drop_table("notify_attempts")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_user_client")

    op.drop_table("inbox")
    op.drop_table("notify_threads")
    with op.batch_alter_table("notify_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_groups_due")

    op.drop_table("notify_groups")
    op.drop_table("notify_escalations")
    with op.batch_alter_table("notify_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_deliveries_due")
        batch_op.drop_index("ix_notify_deliveries_client_created")

    op.drop_table("notify_deliveries")
    with op.batch_alter_table("notify_changes", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_notify_changes_pending",
            postgresql_where=sa.text("processed_at IS NULL"),
            sqlite_where=sa.text("processed_at IS NULL"),
        )

    op.drop_table("notify_changes")
