"""A tenant's alert rules: the rule document as written (``spec``), where it came from, on or off.

Why three origins, each owned by one writer: ``default`` rules are the pack every tenant gets
(``rules/default_pack.yaml``), re-applied at every start so a tenant runs the pack this version
ships; ``file`` rules mirror ``Settings.rule_files``, re-synced at every start; ``api`` rules are the
tenant's own. So the API may create, change and delete only ``api`` rules; a pack or file rule is
changed where it comes from, and only switched on or off by the tenant (``set_enabled``), which the
re-sync keeps. Why the spec and not a serialized ``Rule``: the spec is the documented format, read
back through ``rule_from_spec`` (re-validated), so a stored rule always means what its text says.

Every change appends ``rule.created`` / ``rule.updated`` / ``rule.deleted`` to the audit chain in
the same transaction. The subject is the rule's id (names may pass the audit subject's length).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from infragent.errors import InfrAgentError
from infragent.rules.errors import RuleFileError
from infragent.rules.files import rule_from_spec, rule_to_spec
from infragent.rules.model import Rule, RuleGroup
from infragent.rules.pack import default_pack
from infragent.store import audit
from infragent.store.schema import alert_instances, alert_rules, clients

logger = logging.getLogger(__name__)


Origin = Literal["default", "file", "api"]
#: The actor of changes the server makes itself (pack and file sync).
SYSTEM = "system"


class RuleConflictError(InfrAgentError):
    """A rule change that cannot be made as asked: 409. ``reason`` is ``"exists"`` (the name is
    taken) or ``"managed"`` (a pack or file rule: changed where it comes from, not through the API).
    """

    def __init__(self, name: str, reason: Literal["exists", "managed"], message: str) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule as stored; ``rule.enabled`` equals ``enabled`` (the column is the truth)."""

    id: str
    name: str
    group: str
    origin: Origin
    enabled: bool
    rule: Rule
    updated_at: float
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one re-sync changed; ``skipped`` names rules whose name another origin already holds."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


def _spec(rule: Rule) -> dict[str, Any]:
    """The stored document: the rule's spec without its on/off switch (the column holds that)."""
    spec = dict(rule_to_spec(rule))
    spec.pop("enabled", None)
    return spec


@functools.lru_cache(maxsize=4096)
def _validated(spec_json: bytes, name: str) -> Rule:
    """``rule_from_spec`` once per distinct spec and process: it costs milliseconds (YAML in pure
    Python), and the evaluator reads a tenant's rules far more often than they change. A ``Rule``
    is frozen, so sharing one between callers is safe."""
    return rule_from_spec(orjson.loads(spec_json), f"rule {name!r}")


def _from_row(row: sa.Row[Any]) -> StoredRule | None:
    """The stored rule, or None (logged) when its spec no longer validates: one bad row must not
    hide the tenant's other rules from the evaluator."""
    try:
        rule = _validated(orjson.dumps(row.spec, option=orjson.OPT_SORT_KEYS), row.name)
    except RuleFileError as exc:
        logger.error("stored rule %s of client %s no longer validates: %s", row.name, row.client_id, exc)
        return None
    return StoredRule(
        row.id,
        row.name,
        row.group_name,
        row.origin,
        row.enabled,
        replace(rule, enabled=row.enabled),
        row.updated_at,
        row.created_at,
    )


def _row(conn: sa.Connection, client_id: str, name: str) -> sa.Row[Any] | None:
    return conn.execute(
        sa.select(alert_rules).where(alert_rules.c.client_id == client_id, alert_rules.c.name == name)
    ).first()


# -- reading -----------------------------------------------------------------------------------------


def get_rule(conn: sa.Connection, client_id: str, name: str) -> StoredRule | None:
    """The client's rule ``name``; another client's rule is None, like a missing one."""
    row = _row(conn, client_id, name)
    return None if row is None else _from_row(row)


def load_rules(conn: sa.Connection, client_id: str) -> list[StoredRule]:
    """Every rule of the client, enabled or not, by group then name."""
    rows = conn.execute(
        sa.select(alert_rules)
        .where(alert_rules.c.client_id == client_id)
        .order_by(alert_rules.c.group_name, alert_rules.c.name)
    )
    return [r for r in (_from_row(row) for row in rows) if r is not None]


def tenants_with_rules(conn: sa.Connection) -> list[str]:
    """The clients with at least one enabled rule: the ones an evaluator has work for."""
    rows = conn.execute(
        sa.select(alert_rules.c.client_id)
        .where(alert_rules.c.enabled.is_(True))
        .distinct()
        .order_by(alert_rules.c.client_id)
    )
    return [r.client_id for r in rows]


# -- writing -----------------------------------------------------------------------------------------


def create_rule(
    conn: sa.Connection, client_id: str, rule: Rule, *, origin: Origin, now: float, actor: str
) -> StoredRule:
    """Store a new rule; ``RuleConflictError("exists")`` when the client has one of that name."""
    if _row(conn, client_id, rule.name) is not None:
        raise RuleConflictError(rule.name, "exists", f"a rule named {rule.name!r} already exists")
    rule_id = str(uuid.uuid4())
    spec = _spec(rule)
    conn.execute(
        alert_rules.insert().values(
            id=rule_id,
            client_id=client_id,
            name=rule.name,
            group_name=rule.group,
            origin=origin,
            spec=spec,
            enabled=rule.enabled,
            created_at=now,
            updated_at=now,
        )
    )
    detail = {"name": rule.name, "group": rule.group, "origin": origin, "enabled": rule.enabled, "spec": spec}
    audit.append(conn, client_id, actor, "rule.created", rule_id, detail, now)
    return StoredRule(rule_id, rule.name, rule.group, origin, rule.enabled, rule, now, now)


def _managed(stored: sa.Row[Any], verb: str) -> RuleConflictError:
    where = "the default rule pack" if stored.origin == "default" else "a rule file"
    return RuleConflictError(
        stored.name,
        "managed",
        f"rule {stored.name!r} comes from {where} and cannot be {verb} through the API; "
        'switch it off with PATCH {"enabled": false} and create your own rule under another name',
    )


def _write(
    conn: sa.Connection,
    row: sa.Row[Any],
    rule: Rule,
    enabled: bool,
    *,
    now: float,
    actor: str,
) -> StoredRule:
    spec = _spec(rule)
    changed = [k for k in sorted(set(spec) | set(row.spec)) if spec.get(k) != row.spec.get(k)]
    if enabled != row.enabled:
        changed.append("enabled")
    if changed:
        conn.execute(
            alert_rules.update()
            .where(alert_rules.c.id == row.id)
            .values(group_name=rule.group, spec=spec, enabled=enabled, updated_at=now)
        )
        detail = {
            "name": rule.name,
            "origin": row.origin,
            "enabled": enabled,
            "changed": changed,
            "spec": spec,
        }
        audit.append(conn, row.client_id, actor, "rule.updated", row.id, detail, now)
    updated_at = now if changed else row.updated_at
    return StoredRule(
        row.id,
        rule.name,
        rule.group,
        row.origin,
        enabled,
        replace(rule, enabled=enabled),
        updated_at,
        row.created_at,
    )


def update_rule(
    conn: sa.Connection, client_id: str, name: str, rule: Rule, *, now: float, actor: str
) -> StoredRule | None:
    """Replace the client's ``api`` rule ``name`` with ``rule`` (same name); None when there is none.

    ``RuleConflictError("managed")`` for a pack or file rule. Unchanged content writes nothing.
    """
    row = _row(conn, client_id, name)
    if row is None:
        return None
    if row.origin != "api":
        raise _managed(row, "changed")
    return _write(conn, row, replace(rule, name=name), rule.enabled, now=now, actor=actor)


def set_enabled(
    conn: sa.Connection, client_id: str, name: str, enabled: bool, *, now: float, actor: str
) -> StoredRule | None:
    """Switch any rule of the client on or off (pack and file rules too); None when there is none."""
    row = _row(conn, client_id, name)
    if row is None:
        return None
    current = _from_row(row)
    if current is None:  # a spec that no longer validates can still be switched off
        conn.execute(
            alert_rules.update().where(alert_rules.c.id == row.id).values(enabled=enabled, updated_at=now)
        )
        detail = {"name": name, "origin": row.origin, "enabled": enabled, "changed": ["enabled"]}
        audit.append(conn, client_id, actor, "rule.updated", row.id, detail, now)
        return None
    return _write(conn, row, current.rule, enabled, now=now, actor=actor)


def delete_rule(conn: sa.Connection, client_id: str, name: str, *, now: float, actor: str) -> bool:
    """Delete the client's ``api`` rule ``name`` and its alert instances; False when there is none.

    ``RuleConflictError("managed")`` for a pack or file rule (the next start would bring it back).
    Its transitions stay: they are history, and incidents point at them.
    """
    row = _row(conn, client_id, name)
    if row is None:
        return False
    if row.origin != "api":
        raise _managed(row, "deleted")
    _remove(conn, row, now=now, actor=actor)
    return True


def _remove(conn: sa.Connection, row: sa.Row[Any], *, now: float, actor: str) -> None:
    conn.execute(
        alert_instances.delete().where(
            alert_instances.c.client_id == row.client_id, alert_instances.c.rule_id == row.id
        )
    )
    conn.execute(alert_rules.delete().where(alert_rules.c.id == row.id))
    detail = {"name": row.name, "group": row.group_name, "origin": row.origin}
    audit.append(conn, row.client_id, actor, "rule.deleted", row.id, detail, now)


# -- the pack and the files: re-applied at start ------------------------------------------------------


def _sync(
    conn: sa.Connection, client_id: str, origin: Origin, rules: Sequence[Rule], now: float, *, remove: bool
) -> SyncResult:
    """Make the client's ``origin`` rules match ``rules``: add missing ones, rewrite changed ones
    (keeping the tenant's on/off switch), and with ``remove`` delete those no longer listed. A name
    another origin holds is skipped, never overwritten."""
    existing = {
        row.name: row
        for row in conn.execute(sa.select(alert_rules).where(alert_rules.c.client_id == client_id))
    }
    added: list[str] = []
    updated: list[str] = []
    skipped: list[str] = []
    wanted = {rule.name for rule in rules}
    seen: set[str] = set()
    for rule in rules:
        row = existing.get(rule.name)
        if rule.name in seen:  # listed twice (``read_rule_files`` refuses that): the first one stays
            skipped.append(rule.name)
            continue
        seen.add(rule.name)
        if row is None:
            create_rule(conn, client_id, rule, origin=origin, now=now, actor=SYSTEM)
            added.append(rule.name)
        elif row.origin != origin:
            skipped.append(rule.name)
        elif _spec(rule) != row.spec or rule.group != row.group_name:
            _write(conn, row, rule, row.enabled, now=now, actor=SYSTEM)
            updated.append(rule.name)
    removed: list[str] = []
    if remove:
        for name, row in existing.items():
            if row.origin == origin and name not in wanted:
                _remove(conn, row, now=now, actor=SYSTEM)
                removed.append(name)
    if skipped:
        logger.warning(
            "client %s: %s rules %s not applied: the names belong to other rules", client_id, origin, skipped
        )
    return SyncResult(tuple(added), tuple(updated), tuple(removed), tuple(skipped))


def _rules_of(groups: Iterable[RuleGroup]) -> list[Rule]:
    return [rule for group in groups for rule in group.rules]


def install_default_pack(conn: sa.Connection, client_id: str, now: float) -> SyncResult:
    """Give the client the shipped pack (origin ``default``): idempotent; a pack rule this version
    no longer ships is removed, a changed one rewritten, the tenant's on/off switch kept."""
    return _sync(conn, client_id, "default", _rules_of(default_pack()), now, remove=True)


def sync_file_rules(
    conn: sa.Connection, client_id: str, groups: Sequence[RuleGroup], now: float
) -> SyncResult:
    """Make the client's ``file`` rules exactly ``groups``' rules; ``api`` and pack rules untouched."""
    return _sync(conn, client_id, "file", _rules_of(groups), now, remove=True)


def _client_ids(conn: sa.Connection) -> list[str]:
    return [r.id for r in conn.execute(sa.select(clients.c.id).order_by(clients.c.id))]


def ensure_default_packs(conn: sa.Connection, now: float) -> dict[str, SyncResult]:
    """``install_default_pack`` for every client (server start); only clients with changes listed."""
    results = {cid: install_default_pack(conn, cid, now) for cid in _client_ids(conn)}
    return {cid: r for cid, r in results.items() if r.added or r.updated or r.removed or r.skipped}


def sync_all_file_rules(
    conn: sa.Connection, groups: Sequence[RuleGroup], now: float
) -> dict[str, SyncResult]:
    """``sync_file_rules`` for every client (server start, ``Settings.rule_files`` parsed)."""
    results = {cid: sync_file_rules(conn, cid, groups, now) for cid in _client_ids(conn)}
    return {cid: r for cid, r in results.items() if r.added or r.updated or r.removed or r.skipped}
