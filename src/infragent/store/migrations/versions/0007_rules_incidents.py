"""rules, alert instances and transitions, rule leases, incidents and their timeline

``alert_instances`` persists each alert's timers on every transition, so a restart changes neither
when an alert fires nor whether it keeps firing; ``alert_transitions`` records each change once
(unique key); ``rule_leases`` gives one evaluator per tenant; events and decisions name the
incident they opened, joined or decided on.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("group_name", sa.String(200), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("client_id", "name", name="uq_alert_rules_client_name"),
    )
    op.create_table(
        "alert_instances",
        sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
        sa.Column("rule_id", sa.String(36), sa.ForeignKey("alert_rules.id"), primary_key=True),
        sa.Column("group_key", sa.String(64), primary_key=True),
        sa.Column("labels", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_since", sa.Float),
        sa.Column("firing_since", sa.Float),
        sa.Column("keep_firing_since", sa.Float),
        sa.Column("last_value", sa.Float),
        sa.Column("last_eval", sa.Float),
        sa.Column("resolved_at", sa.Float),
        sa.Column("memo", Json, nullable=False),
        sa.Column("incident_id", sa.String(36)),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alert_instances_incident", "alert_instances", ["incident_id"])
    op.create_table(
        "alert_transitions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("labels", Json, nullable=False),
        sa.Column("incident_id", sa.String(36)),
        sa.UniqueConstraint(
            "client_id", "rule_id", "group_key", "at", "to_status", name="uq_alert_transitions_once"
        ),
    )
    op.create_index("ix_alert_transitions_client_at", "alert_transitions", ["client_id", "at"])
    op.create_table(
        "rule_leases",
        sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("token", sa.String(36), nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("rule_name", sa.String(200)),
        sa.Column("labels", Json, nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("acknowledged_at", sa.Float),
        sa.Column("acknowledged_by", sa.String(200)),
        sa.Column("resolved_at", sa.Float),
        sa.Column("resolved_by", sa.String(200)),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("flap_count", sa.Integer, nullable=False),
        sa.Column("flapping", sa.Boolean, nullable=False),
        sa.Column("reopened_at", Json, nullable=False),
    )
    op.create_index("ix_incidents_client_fingerprint", "incidents", ["client_id", "fingerprint", "opened_at"])
    op.create_index("ix_incidents_client_updated", "incidents", ["client_id", "updated_at"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("client_id", sa.String(36), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", Json, nullable=False),
    )
    op.create_index("ix_incident_timeline_incident", "incident_timeline", ["incident_id", "id"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("incident_id", sa.String(36)))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("incident_id", sa.String(36)))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("incident_id")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("incident_id")
    for index, table in (
        ("ix_incident_timeline_incident", "incident_timeline"),
        ("ix_incidents_client_updated", "incidents"),
        ("ix_incidents_client_fingerprint", "incidents"),
        ("ix_alert_transitions_client_at", "alert_transitions"),
        ("ix_alert_instances_incident", "alert_instances"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "incident_timeline",
        "incidents",
        "rule_leases",
        "alert_transitions",
        "alert_instances",
        "alert_rules",
    ):
        op.drop_table(table)
