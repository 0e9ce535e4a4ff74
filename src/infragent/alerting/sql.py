"""``SqlAlertStore``: the evaluator's ``AlertStore`` over the database, SQLite and PostgreSQL alike.

The one adapter of the evaluator's port: it composes the store's aggregate modules (alerts, rules,
incidents, audit) into the evaluator's transactions. A round of writes is one transaction, in the
order the incidents require: fence on the lease token; per instance, the instance row with its new
status, each transition (whose unique key refuses one recorded before), an audit entry each, then
``record_alert_transition`` for what the incidents must learn, and the incident id back on the
instance and its transitions. Anything that says another evaluator owns the tenant rolls it all
back and raises ``TenantLostError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from infragent.alerting.evaluator import Evaluator, EvaluatorConfig
from infragent.alerting.ports import (
    InstanceWrite,
    RuleRecord,
    SavedInstance,
    SeriesReader,
    Signal,
    TenantLostError,
    ValueUpdate,
    Written,
)
from infragent.alerting.signals import encode_signal, pg_listen
from infragent.alerting.telemetry import AlertMetrics
from infragent.config import Settings
from infragent.incidents.core import policy_from_settings
from infragent.incidents.model import IncidentPolicy
from infragent.rules.model import RuleGroup
from infragent.rules.pack import read_rule_files
from infragent.rules.state import AlertStatus, Transition
from infragent.rules.templates import format_value
from infragent.rules.window import EventSample
from infragent.store import alerts, audit, incidents
from infragent.store import rules as rule_rows
from infragent.store.base import Database

#: The actor of the audit entries the evaluator writes.
ACTOR = "rules"


def audit_kind(t: Transition) -> str:
    """``alert.pending`` / ``alert.firing`` / ``alert.resolved`` (firing → inactive), and
    ``alert.inactive`` for a pending alert whose condition stopped before it fired."""
    if t.to_status is AlertStatus.INACTIVE:
        return "alert.resolved" if t.resolved else "alert.inactive"
    return f"alert.{t.to_status.value}"


class SqlAlertStore:
    def __init__(
        self, db: Database, policy: IncidentPolicy, *, file_groups: Sequence[RuleGroup] | None = None
    ) -> None:
        self.db = db
        self._pool = db.engine.pool
        self.policy = policy
        #: the rules of ``Settings.rule_files``, synced into every tenant by ``prepare``; None: no sync
        self.file_groups = list(file_groups) if file_groups is not None else None

    # -- rules and tenants ------------------------------------------------------------------------------

    def prepare(self, now: float) -> None:
        with self.db.write() as conn:
            rule_rows.ensure_default_packs(conn, now)
            if self.file_groups is not None:
                rule_rows.sync_all_file_rules(conn, self.file_groups, now)

    def tenants_with_rules(self) -> list[str]:
        with self.db.read() as conn:
            return list(rule_rows.tenants_with_rules(conn))

    def tenants_with_active_alerts(self) -> list[str]:
        with self.db.read() as conn:
            return alerts.tenants_with_active_alerts(conn)

    def load_rules(self, client_id: str) -> list[RuleRecord]:
        with self.db.read() as conn:
            stored = rule_rows.load_rules(conn, client_id)
        return [RuleRecord(r.id, r.name, replace(r.rule, enabled=r.enabled), r.updated_at) for r in stored]

    def rule_signatures(self, client_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
        with self.db.read() as conn:
            return alerts.rule_signatures(conn, client_ids)

    # -- the lease --------------------------------------------------------------------------------------

    def acquire(self, client_id: str, owner: str, now: float, lease_s: float) -> str | None:
        with self.db.write() as conn:
            return alerts.acquire_lease(conn, client_id, owner, now, lease_s)

    def renew(self, tokens: Sequence[str], now: float, lease_s: float) -> set[str]:
        with self.db.write() as conn:
            return alerts.renew_leases(conn, tokens, now, lease_s)

    def release(self, client_id: str, token: str) -> None:
        if self.db.engine.pool is not self._pool:
            # the store was closed (``dispose`` replaces the pool) before the app stopped: a new
            # connection now would be one nobody closes; the lease simply expires instead
            return
        with self.db.write() as conn:
            alerts.release_lease(conn, client_id, token)

    # -- state ------------------------------------------------------------------------------------------

    def load_instances(self, client_id: str) -> list[SavedInstance]:
        with self.db.read() as conn:
            rows = alerts.load_instances(conn, client_id)
        return [SavedInstance(r.rule_id, r.group_key, r.labels, r.state, r.incident_id) for r in rows]

    def hosts_last_seen(self, client_id: str) -> dict[str, float]:
        with self.db.read() as conn:
            return alerts.hosts_last_seen(conn, client_id)

    def events_since(self, client_id: str, since: float) -> list[EventSample]:
        with self.db.read() as conn:
            rows = alerts.events_since(conn, client_id, since)
        return [
            EventSample(r.received_at, r.type, r.service, r.severity, r.node_id, r.data, r.id) for r in rows
        ]

    def commit(
        self, client_id: str, token: str, writes: Sequence[InstanceWrite], now: float
    ) -> dict[tuple[str, str], Written]:
        try:
            with self.db.write() as conn:
                if not alerts.fence(conn, client_id, token):
                    raise TenantLostError(client_id, "the lease is held by another evaluator")
                return {w.key: self._write(conn, client_id, w, now) for w in writes}
        except sa.exc.IntegrityError as exc:
            raise TenantLostError(
                client_id, "a transition was already recorded by another evaluator"
            ) from exc

    def _write(self, conn: sa.Connection, client_id: str, w: InstanceWrite, now: float) -> Written:
        keys: dict[str, Any] = {"rule_id": w.rule_id, "group_key": w.group_key}
        incident = w.incident_id
        alerts.write_instance(
            conn, client_id, **keys, labels=w.labels, state=w.state, incident_id=incident, now=now
        )
        subject = f"alert:{w.rule_id}:{w.group_key[:32]}"
        for t in w.transitions:
            alerts.insert_transition(conn, client_id, **keys, labels=w.labels, transition=t)
            audit.append(conn, client_id, ACTOR, audit_kind(t), subject, _detail(w, t), now)
        reported = w.reported
        for t in w.transitions:
            if t.from_status is AlertStatus.INACTIVE:
                reported = False  # a new episode: nothing of it reached the incidents yet
            if (t.fired and w.report_fired) or (not t.fired and reported):
                incident = self._report(conn, client_id, w, t, now) or incident
                reported = True
        if w.deferred_fire is not None:
            incident = self._report(conn, client_id, w, w.deferred_fire, now) or incident
            reported = True
        if incident != w.incident_id:
            alerts.set_instance_incident(conn, client_id, w.rule_id, w.group_key, incident, now)
        if reported and incident is not None and w.event_ids:
            alerts.link_events(conn, client_id, w.event_ids, incident)
        return Written(incident, reported)

    def _report(
        self, conn: sa.Connection, client_id: str, w: InstanceWrite, t: Transition, now: float
    ) -> str | None:
        got = incidents.record_alert_transition(
            conn,
            client_id,
            rule_id=w.rule_id,
            rule_name=w.rule_name,
            group_key=w.group_key,
            labels=w.labels,
            severity=w.severity,
            annotations=w.annotations,
            transition=t,
            policy=self.policy,
            now=now,
        )
        if got is not None and t in w.transitions:
            alerts.set_transition_incident(conn, client_id, w.rule_id, w.group_key, t, got)
        return got

    def flush_values(self, client_id: str, token: str, values: Sequence[ValueUpdate]) -> None:
        with self.db.write() as conn:
            if not alerts.fence(conn, client_id, token):
                raise TenantLostError(client_id, "the lease is held by another evaluator")
            alerts.write_values(conn, client_id, [(v.rule_id, v.group_key, v.value, v.at) for v in values])

    def signal(self, signal: Signal) -> None:
        if not self.db.is_postgres:
            return  # one server per SQLite file: nobody else to tell
        with self.db.write() as conn:
            alerts.notify(conn, encode_signal(signal))


def _detail(w: InstanceWrite, t: Transition) -> dict[str, Any]:
    return {
        "rule": w.rule_name,
        "labels": w.labels,
        "from": t.from_status.value,
        "to": t.to_status.value,
        "at": t.at,
        "value": format_value(t.value),
        "reason": t.reason,
    }


def build_evaluator(
    settings: Settings,
    db: Database,
    reader: SeriesReader,
    *,
    clock: Callable[[], float],
    registry: CollectorRegistry | None = None,
) -> Evaluator:
    """The server's evaluator over its database: rule files parsed now (a broken file stops the
    start-up with its line and column), synced into every tenant by the evaluator's first tick."""
    groups = read_rule_files([Path(p) for p in settings.rule_files])
    config = EvaluatorConfig(
        tick_s=settings.rule_tick_s,
        lease_s=settings.rule_lease_s,
        max_instances=settings.max_alert_instances_per_tenant,
        auto_pause_s=settings.incident_auto_pause_s,
    )
    store = SqlAlertStore(db, policy_from_settings(settings), file_groups=groups)
    listen = pg_listen(db.engine.url.render_as_string(hide_password=False)) if db.is_postgres else None
    return Evaluator(store, reader, config, clock=clock, metrics=AlertMetrics(registry), listen=listen)
