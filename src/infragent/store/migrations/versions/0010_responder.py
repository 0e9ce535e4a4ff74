"""responder: runbook runs and their steps, approvals, action history, guard settings, schedules

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

Json = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("runbook", sa.String(length=200), nullable=True),
        sa.Column("command_id", sa.String(length=36), nullable=True),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "command_id", name="uq_action_history_command"),
    )
    op.create_index(
        "ix_action_history_budget", "action_history", ["client_id", "node_id", "action", "at"], unique=False
    )
    op.create_table(
        "run_steps",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("command", Json, nullable=True),
        sa.Column("command_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", "due_at"),
    )
    op.create_table(
        "guard_settings",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("shadow", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("shadow_runbooks", Json, nullable=False),
        sa.Column("budget_limit", sa.Integer(), nullable=True),
        sa.Column("budget_window_s", sa.Float(), nullable=True),
        sa.Column("approval_actions", Json, nullable=False),
        sa.Column("approval_llm", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("breaker_open", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("breaker_since", sa.Float(), nullable=True),
        sa.Column("breaker_calm_since", sa.Float(), nullable=True),
        sa.Column("breaker_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "run_approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("node_id", sa.String(length=255), nullable=True),
        sa.Column("runbook", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("params", Json, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq", name="uq_run_approvals_step"),
    )
    op.create_index("ix_run_approvals_client_status", "run_approvals", ["client_id", "status"], unique=False)
    op.create_table(
        "runbook_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("schedule_id", sa.String(length=36), nullable=True),
        sa.Column("runbook", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("state", Json, nullable=False),
        sa.Column("next_at", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("lease_epoch", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancel_requested_by", sa.String(length=200), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("verified_at", sa.Float(), nullable=True),
        sa.Column("mttr_s", sa.Float(), nullable=True),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runbook_runs_active", "runbook_runs", ["status", "next_at"], unique=False)
    op.create_index(
        "ix_runbook_runs_client_created", "runbook_runs", ["client_id", "created_at"], unique=False
    )
    op.create_index("ix_runbook_runs_incident", "runbook_runs", ["client_id", "incident_id"], unique=False)
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("runbook", sa.String(length=200), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=True),
        sa.Column("missed", sa.String(length=16), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=True),
        sa.Column("labels", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.Float(), nullable=True),
        sa.Column("last_run_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "name", name="uq_schedules_name"),
    )
    op.create_index("ix_schedules_due", "schedules", ["enabled", "next_run_at"], unique=False)


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("runbook_runs")
    op.drop_table("run_approvals")
    op.drop_table("guard_settings")
    op.drop_table("schedule_runs")
    op.drop_table("run_steps")
    op.drop_table("action_history")
