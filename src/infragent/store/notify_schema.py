"""The notification tables (migration 0009), on the one ``schema.metadata``.

Why a module of their own: ``schema.py`` is at its size budget; these tables form one aggregate
(``docs/notifications.md``). Anything comparing the whole schema (alembic's environment, the
migration test) imports this module too.

* configuration, per tenant: ``notify_channels`` (settings, and ``secrets`` which no read for the
  API ever selects), ``notify_routing`` (the route tree, one JSON document), ``notify_silences``,
  ``notify_inhibit_rules``;
* the outbox: ``notify_changes`` (written in the transaction of the incident change that caused
  it), ``notify_groups`` (aggregation groups, each carrying its notification log: what was last
  sent, when, and the next flush), ``notify_group_members``, ``notify_deliveries`` (one per channel
  per flush; the id is the idempotency key), ``notify_attempts`` (every try), ``notify_threads``
  (Slack bot thread ``ts`` per channel and incident), ``notify_escalations`` (escalation-policy
  steps already fired);
* ``inbox``: in-app notifications, one row per user.
"""

from __future__ import annotations

import sqlalchemy as sa

from infragent.store.schema import Json, metadata

notify_channels = sa.Table(
    "notify_channels",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("settings", Json, nullable=False),
    # write-only: read by the delivery worker and nobody else
    sa.Column("secrets", Json, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.UniqueConstraint("client_id", "name", name="uq_notify_channels_name"),
)

notify_routing = sa.Table(
    "notify_routing",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    # the route tree as the API takes it (``notify/config.py`` parses and validates it)
    sa.Column("tree", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False),
)

notify_silences = sa.Table(
    "notify_silences",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    # [{"name", "op", "value"}]
    sa.Column("matchers", Json, nullable=False),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("incident_id", sa.String(36)),
    # set when expired early (``ends_at`` is then moved to that time)
    sa.Column("expired_by", sa.String(100)),
    sa.Index("ix_notify_silences_client_ends", "client_id", "ends_at"),
)

notify_inhibit_rules = sa.Table(
    "notify_inhibit_rules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("source", Json, nullable=False),
    sa.Column("target", Json, nullable=False),
    sa.Column("equal", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
)

notify_changes = sa.Table(
    "notify_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("incident_id", sa.String(36), nullable=False),
    # model.ChangeKind
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("detail", Json, nullable=False),
    sa.Column("processed_at", sa.Float),
)
sa.Index(
    "ix_notify_changes_pending",
    notify_changes.c.id,
    postgresql_where=notify_changes.c.processed_at.is_(None),
    sqlite_where=notify_changes.c.processed_at.is_(None),
)

notify_groups = sa.Table(
    "notify_groups",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("route_id", sa.String(64), nullable=False),
    # a digest of the group_by label values (``notify/route.group_key``)
    sa.Column("group_key", sa.String(64), nullable=False),
    sa.Column("group_labels", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # when the group is next due to flush; NULL: nothing to send until a member changes
    sa.Column("next_flush_at", sa.Float),
    # the notification log: incident ids in the last sent firing / resolved sets, and when
    sa.Column("sent_firing", Json, nullable=False),
    sa.Column("sent_resolved", Json, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Column("flush_count", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("client_id", "route_id", "group_key", name="uq_notify_groups_key"),
    sa.Index("ix_notify_groups_due", "next_flush_at"),
)

notify_group_members = sa.Table(
    "notify_group_members",
    metadata,
    sa.Column("group_id", sa.String(36), sa.ForeignKey("notify_groups.id"), primary_key=True),
    sa.Column("incident_id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    # "firing" | "resolved"
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("changed_at", sa.Float, nullable=False),
    sa.Index("ix_notify_group_members_incident", "incident_id"),
)

notify_deliveries = sa.Table(
    "notify_deliveries",
    metadata,
    # the idempotency key: ``webhook-id``, the e-mail Message-ID, …
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("channel_id", sa.String(36), nullable=False),
    sa.Column("group_id", sa.String(36)),
    sa.Column("incident_id", sa.String(36)),
    sa.Column("route_id", sa.String(64)),
    # model.NotificationKind
    sa.Column("kind", sa.String(16), nullable=False),
    # the model.Message snapshot (without rendered text)
    sa.Column("message", Json, nullable=False),
    # model.DeliveryStatus
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    # past this, a retryable failure dead-letters the delivery
    sa.Column("deadline_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    # why a suppressed one was not sent ("silence <id>", "inhibit <name>", "mute <route>")
    sa.Column("suppressed_by", sa.String(200)),
    # a unique name of what caused it (group flush, change, escalation step, retry), so re-running
    # the step that created it cannot create it twice
    sa.Column("cause", sa.String(200), nullable=False),
    sa.UniqueConstraint("client_id", "cause", "channel_id", name="uq_notify_deliveries_cause"),
    sa.Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_notify_deliveries_client_created", "client_id", "created_at"),
)

notify_attempts = sa.Table(
    "notify_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery_id", sa.String(36), sa.ForeignKey("notify_deliveries.id"), nullable=False, index=True
    ),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    # model.AttemptOutcome
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("retry_after_s", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("worker", sa.String(64), nullable=False),
)

notify_threads = sa.Table(
    "notify_threads",
    metadata,
    sa.Column("channel_id", sa.String(36), primary_key=True),
    sa.Column("incident_id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("ref", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

notify_escalations = sa.Table(
    "notify_escalations",
    metadata,
    sa.Column("incident_id", sa.String(36), primary_key=True),
    sa.Column("route_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("fired_at", sa.Float, nullable=False),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("delivery_id", sa.String(36), nullable=False),
    sa.Column("incident_id", sa.String(36)),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("read_at", sa.Float),
    sa.UniqueConstraint("delivery_id", "user_id", name="uq_inbox_delivery_user"),
    sa.Index("ix_inbox_user_client", "user_id", "client_id", "read_at"),
)
