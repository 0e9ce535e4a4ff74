"""The responder's tables for runbooks as steps (migration 0010), on the one ``schema.metadata``.

Why a module of their own: ``schema.py`` is at its size budget, and these tables are one aggregate
(``docs/runbooks.md`` "Runbooks as steps", ``docs/responder.md`` "Guardrails"):

* ``runbook_runs``: one execution of a step runbook, for an incident (or a schedule). ``state`` is
  the pure core's ``step_run.Run`` as JSON (``responder/run_codec.py``); the other columns copy
  what the API filters and sorts on. ``lease_owner``/``lease_until``/``lease_epoch`` fence the
  executor: a write that does not carry the epoch it claimed with changes nothing. ``next_at`` is
  when the run must be looked at again without news (a wait ends, a timeout, an expiry).
  ``cancel_requested_*`` is a person's cancel, carried out by the executor that holds the run.
  ``mttr_s``: incident opened (or reopened) → verified recovery, set only on a verified run.
* ``run_steps``: every step execution that ended, one row per ``seq`` (the run's results).
* ``run_approvals``: a request for a person's yes to one exact command (``run_id`` + ``seq``),
  answered once (pending → approved | rejected | expired).
* ``action_history``: every automatic action sent to a host (and, in shadow mode, recorded): what
  the budget counts and the effectiveness page measures.
* ``guard_settings``: a tenant's guardrails (shadow mode, shadow runbooks, budget, approvals) and
  its circuit breaker's state. The global kill switch is ``server_kv`` key
  ``responder.kill_switch`` (or the ``responder_kill_switch`` setting).
* ``schedules`` and ``schedule_runs``: scheduled runbooks; a due run is claimed by inserting its
  ``(schedule_id, due_at)`` row, so two server processes cannot both run it.
"""

from __future__ import annotations

import sqlalchemy as sa

from infragent.store.schema import Json, metadata

runbook_runs = sa.Table(
    "runbook_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("incident_id", sa.String(36)),
    sa.Column("schedule_id", sa.String(36)),
    sa.Column("runbook", sa.String(200), nullable=False),
    # the host the run's commands go to (an event's node, an alert's host label, a schedule's target)
    sa.Column("node_id", sa.String(255)),
    # queued | running | waiting_approval | completed | failed | cancelled
    sa.Column("status", sa.String(20), nullable=False),
    # completed | escalated | failed | cancelled (None while the run has not ended)
    sa.Column("outcome", sa.String(16)),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("state", Json, nullable=False),
    sa.Column("next_at", sa.Float),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", sa.Float),
    sa.Column("lease_epoch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_requested_by", sa.String(200)),
    sa.Column("cancel_reason", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("verified_at", sa.Float),
    sa.Column("mttr_s", sa.Float),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_runbook_runs_client_created", "client_id", "created_at"),
    sa.Index("ix_runbook_runs_incident", "client_id", "incident_id"),
    sa.Index("ix_runbook_runs_active", "status", "next_at"),
)

run_steps = sa.Table(
    "run_steps",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # ok | failed | timeout | rejected | expired | refused | would_send | cancelled
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    # the command decided ({"key","action","target","params","source","on","approved_by"}) or None
    sa.Column("command", Json),
    sa.Column("command_id", sa.String(36)),
)

run_approvals = sa.Table(
    "run_approvals",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("incident_id", sa.String(36)),
    sa.Column("node_id", sa.String(255)),
    sa.Column("runbook", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("params", Json, nullable=False),
    # runbook | llm
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    # pending | approved | rejected | expired
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("decided_at", sa.Float),
    sa.Column("note", sa.Text),
    sa.UniqueConstraint("run_id", "seq", name="uq_run_approvals_step"),
    sa.Index("ix_run_approvals_client_status", "client_id", "status"),
)

action_history = sa.Table(
    "action_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("node_id", sa.String(255), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    # sent by the responder (runbook, llm, policy): counts against the budget
    sa.Column("automatic", sa.Boolean, nullable=False),
    # only recorded (shadow mode or a dry run): nothing was sent
    sa.Column("shadow", sa.Boolean, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("runbook", sa.String(200)),
    sa.Column("command_id", sa.String(36)),
    sa.Column("incident_id", sa.String(36)),
    # the command's end: ok | error | rejected | timeout | would_send (None: no answer yet)
    sa.Column("outcome", sa.String(16)),
    sa.UniqueConstraint("client_id", "command_id", name="uq_action_history_command"),
    sa.Index("ix_action_history_budget", "client_id", "node_id", "action", "at"),
)

guard_settings = sa.Table(
    "guard_settings",
    metadata,
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("shadow", sa.Boolean, nullable=False, server_default=sa.false()),
    # runbook names in shadow mode
    sa.Column("shadow_runbooks", Json, nullable=False),
    # None: the defaults (3 per 30 min)
    sa.Column("budget_limit", sa.Integer),
    sa.Column("budget_window_s", sa.Float),
    # action names that always need approval
    sa.Column("approval_actions", Json, nullable=False),
    sa.Column("approval_llm", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("breaker_open", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("breaker_since", sa.Float),
    sa.Column("breaker_calm_since", sa.Float),
    sa.Column("breaker_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("runbook", sa.String(200), nullable=False),
    # {"cron": "*/5 * * * *"} | {"every_s": 300} | {"at": 1.7e9}
    sa.Column("spec", Json, nullable=False),
    sa.Column("tz", sa.String(64)),
    # run_once | skip: what to do with the runs missed while no server was up
    sa.Column("missed", sa.String(16), nullable=False),
    # the host (node id) the run acts on, and labels its templates may name
    sa.Column("node_id", sa.String(255)),
    sa.Column("labels", Json, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run_at", sa.Float),
    sa.Column("last_run_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("client_id", "name", name="uq_schedules_name"),
    sa.Index("ix_schedules_due", "enabled", "next_run_at"),
)

schedule_runs = sa.Table(
    "schedule_runs",
    metadata,
    sa.Column("schedule_id", sa.String(36), primary_key=True),
    sa.Column("due_at", sa.Float, primary_key=True),
    sa.Column("client_id", sa.String(36), nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(36)),
)
