"""The relational schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Times are unix seconds as doubles: one representation on both databases, and arithmetic on leases
and cooldowns stays in SQL. Migrations under ``migrations/`` create exactly this; a test compares them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()
Json = sa.JSON().with_variant(JSONB(), "postgresql")

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("company_name", sa.String(200), nullable=False),
    sa.Column("webhook_url", sa.String(2048), nullable=False),
    sa.Column("webhook_secret", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False, index=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    # 0008: a label, the last request made with it (written at most once a minute per key), the end
    # of a rotated key's grace period, and the key that replaced it
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("last_used_at", sa.Float),
    sa.Column("expires_at", sa.Float),
    sa.Column("replaced_by", sa.String(32)),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("node_id", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("command_mode", sa.String(8), nullable=False),
    sa.Column("actions", Json, nullable=False),
    sa.Column("labels", Json, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("cooldown_until", sa.Float),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_token", sa.String(36)),
    sa.Column("lease_until", sa.Float),
    sa.UniqueConstraint("client_id", "node_id", name="uq_agents_client_node"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("processed_at", sa.Float),
    sa.Column("decision_id", sa.String(36)),
    # the incident the event opened or joined (store/incidents.py)
    sa.Column("incident_id", sa.String(36)),
    sa.Index("ix_events_client_received", "client_id", "received_at"),
)
# Pending events only, per agent in arrival order: the claim's pick (each agent's oldest pending
# event is the first entry under its id) and the read of what it claimed (store/claims.py).
sa.Index(
    "ix_events_pending_agent_received",
    events.c.agent_id,
    events.c.received_at,
    postgresql_where=events.c.processed_at.is_(None),
    sqlite_where=events.c.processed_at.is_(None),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("params", Json, nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text),
    sa.Column("answer", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    # the incident decided on (None for decisions made before incidents existed)
    sa.Column("incident_id", sa.String(36)),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("decision_id", sa.String(36), sa.ForeignKey("decisions.id"), nullable=False, index=True),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("params", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("http_status", sa.Integer),
    sa.Column("output", sa.Text),
    # 0008: who asked for it from the dashboard or the API ("user:<id>" / "key:<id>"); None: the responder
    sa.Column("requested_by", sa.String(200)),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(100), nullable=False),
    sa.Column("detail", Json, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_client_id", "client_id", "id"),
    sa.Index("ix_audit_subject", "subject"),
)

# -- metrics (store/metrics*.py own every query on these) ----------------------------------------
# ``metric_batches`` makes a resent batch a no-op (its primary key is the idempotency key);
# ``metric_series`` turns (tenant, host, name, labels) into one integer once; ``metric_chunks`` holds
# one compressed block of samples per (series, batch, clock hour) plus its 1-hour rollup partial
# (see store/metrics/chunks.py); ``metric_rollups_1h`` keeps 1-hour rollups of chunks that retention
# removed; ``metric_retention`` overrides the raw retention per tenant. On PostgreSQL
# ``metric_chunks`` is partitioned by day (``postgresql_partition_by``); its partitions live in the
# ``metric_partitions`` schema, so they are not part of this declared schema (store/metrics/pg.py).

metric_batches = sa.Table(
    "metric_batches",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("batch_id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
)

metric_series = sa.Table(
    "metric_series",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("unit", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("monotonic", sa.Boolean, nullable=False),
    sa.Column("labels", Json, nullable=False),
    sa.Column("labels_key", sa.String(64), nullable=False),
    sa.UniqueConstraint("client_id", "host", "name", "labels_key", name="uq_metric_series_identity"),
)

metric_chunks = sa.Table(
    "metric_chunks",
    metadata,
    sa.Column("series_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("start_ts", sa.Float, nullable=False),
    sa.Column("end_ts", sa.Float, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("vmin", sa.Float, nullable=False),
    sa.Column("vmax", sa.Float, nullable=False),
    sa.Column("vsum", sa.Float, nullable=False),
    sa.Column("vlast", sa.Float, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    # 0: as ingested (one chunk per batch, cheap encoding); 1: compacted (one per series and hour)
    sa.Column("level", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
    sa.Index("ix_metric_chunks_series_start", "series_id", "start_ts"),
    postgresql_partition_by="RANGE (start_ts)",
)
# What the compactor has still to do, found without scanning compacted chunks (store/metrics/compaction.py).
sa.Index(
    "ix_metric_chunks_pending",
    metric_chunks.c.start_ts,
    postgresql_where=metric_chunks.c.level == 0,
    sqlite_where=metric_chunks.c.level == 0,
)

metric_rollups_1h = sa.Table(
    "metric_rollups_1h",
    metadata,
    sa.Column(
        "series_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("bucket", sa.Float, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("vmin", sa.Float, nullable=False),
    sa.Column("vmax", sa.Float, nullable=False),
    sa.Column("vsum", sa.Float, nullable=False),
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Column("vlast", sa.Float, nullable=False),
)

metric_retention = sa.Table(
    "metric_retention",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("raw_days", sa.Float, nullable=False),
)

# The fleet view's per-host row, folded in at write time (store/metrics/hosts.py): the newest sample time
# and, per fleet value (CPU idle, memory used, fullest filesystem), the newest sample's time and value.
metric_hosts = sa.Table(
    "metric_hosts",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("cpu_ts", sa.Float),
    sa.Column("cpu", sa.Float),
    sa.Column("memory_ts", sa.Float),
    sa.Column("memory", sa.Float),
    sa.Column("filesystem_ts", sa.Float),
    sa.Column("filesystem", sa.Float),
)

# -- rules, alerts, incidents (store/rules.py, store/alerts.py, store/incidents.py) ---------------
# ``alert_rules``: a tenant's rules, the rule document as written (``spec``, re-validated on read);
# ``alert_instances``: one row per (rule, group) with the persisted timers (rules/state.py), fenced
# by ``rule_leases`` (one evaluator per tenant at a time); ``alert_transitions``: each status change
# once (the unique key makes a second evaluator's duplicate write fail); ``incidents`` and
# ``incident_timeline``: what alerts and events open, and everything that happened to it.

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("group_name", sa.String(200), nullable=False),
    # "default" (the pack every tenant gets), "file" (loaded at start), "api"
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("spec", Json, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("client_id", "name", name="uq_alert_rules_client_name"),
)

alert_instances = sa.Table(
    "alert_instances",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("rule_id", sa.String(36), sa.ForeignKey("alert_rules.id"), primary_key=True),
    # sha256 of the group labels (sorted JSON): one instance per group
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
    sa.Index("ix_alert_instances_incident", "incident_id"),
)

alert_transitions = sa.Table(
    "alert_transitions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
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
    sa.Index("ix_alert_transitions_client_at", "client_id", "at"),
)

rule_leases = sa.Table(
    "rule_leases",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("token", sa.String(36), nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
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
    sa.Index("ix_incidents_client_fingerprint", "client_id", "fingerprint", "opened_at"),
    sa.Index("ix_incidents_client_updated", "client_id", "updated_at"),
)

incident_timeline = sa.Table(
    "incident_timeline",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(36), sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("detail", Json, nullable=False),
    sa.Index("ix_incident_timeline_incident", "incident_id", "id"),
)


# -- users, roles and sessions (store/users.py, store/sessions.py) -------------------------------
# ``users``: people, across tenants (e-mail unique, lower-cased), password hashed with argon2id;
# ``memberships``: a user's role in one tenant; ``sessions``: one row per sign-in, keyed by the
# SHA-256 of the token the signed cookie carries, so a database leak reveals no usable session;
# ``server_kv``: server-wide values every process shares (the cookie-signing key).

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled_at", sa.Float),
    sa.Column("last_login_at", sa.Float),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_memberships_client", "client_id"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("ip", sa.String(64), nullable=False),
    sa.Column("user_agent", sa.String(300), nullable=False),
    sa.Index("ix_sessions_user", "user_id"),
)

server_kv = sa.Table(
    "server_kv",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
