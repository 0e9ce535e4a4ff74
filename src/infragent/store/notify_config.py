"""A tenant's notification configuration: channels, the route tree, silences, inhibit rules.

Functions over the caller's connection, returning ``notify.model`` values, so a use case (an API
route, the CLI, the pipeline's flush) composes them in one transaction. Nothing here validates a
channel's settings or a route tree: ``notify/config.py`` does that before the call; the store keeps
what it is given and enforces what only the database can (names unique per tenant, the routing
document's version, tenant isolation: another tenant's id reads as missing, ``NotifyNotFoundError``).

Why secrets are never echoed: a channel's secrets (webhook URLs that are credentials, tokens,
routing keys, passwords) are write-only. ``public_channel`` is the one shape the API and the pages
show, with the *names* of the secrets set; audit entries carry the same names, never a value.

Every change appends to the tenant's audit chain in the same transaction (``notify.channel.*``,
``notify.routes.updated``, ``notify.silence.*``, ``notify.inhibit.*``), under ``audit.lock_tenant``
taken first, so the checks that precede a write (a taken name, the routing version) hold until
the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa

from infragent.notify.errors import NotifyConflictError, NotifyNotFoundError
from infragent.notify.model import ChannelConfig, ChannelKind, InhibitRule, Matcher, MatchOp, Silence
from infragent.store import audit
from infragent.store.notify_schema import (
    notify_channels,
    notify_inhibit_rules,
    notify_routing,
    notify_silences,
    notify_threads,
)

SilenceState = Literal["active", "pending", "expired"]


@dataclass(frozen=True, slots=True)
class StoredChannel(ChannelConfig):
    """A channel as stored: the config the adapters take, plus when it was made and changed."""

    created_at: float = 0.0
    updated_at: float = 0.0
    created_by: str = ""


@dataclass(frozen=True, slots=True)
class RoutingDoc:
    """A tenant's route tree as the API took it, with the version a writer must name to replace it."""

    tree: dict[str, Any]
    version: int
    updated_at: float
    updated_by: str


# -- matchers as stored: [{"name", "op", "value"}] -------------------------------------------------


def matchers_to_json(matchers: Iterable[Matcher]) -> list[dict[str, str]]:
    return [{"name": m.name, "op": m.op, "value": m.value} for m in matchers]


def matchers_from_json(doc: Iterable[Mapping[str, Any]]) -> tuple[Matcher, ...]:
    return tuple(Matcher(str(m["name"]), cast(MatchOp, m["op"]), str(m["value"])) for m in doc)


# -- channels ----------------------------------------------------------------------------------------


def _channel(row: sa.Row[Any]) -> StoredChannel:
    values = dict(row._mapping)
    values.update(settings=dict(row.settings), secrets=dict(row.secrets), enabled=bool(row.enabled))
    return StoredChannel(**values)


def _name_taken(conn: sa.Connection, client_id: str, name: str, other_than: str | None = None) -> bool:
    q = sa.select(notify_channels.c.id).where(
        notify_channels.c.client_id == client_id, notify_channels.c.name == name
    )
    if other_than is not None:
        q = q.where(notify_channels.c.id != other_than)
    return conn.execute(q).first() is not None


def create_channel(
    conn: sa.Connection,
    client_id: str,
    *,
    name: str,
    kind: ChannelKind,
    settings: Mapping[str, Any],
    secrets: Mapping[str, Any],
    enabled: bool = True,
    actor: str,
    now: float,
) -> StoredChannel:
    """Store a validated channel. ``NotifyConflictError`` when the tenant has one of that name."""
    audit.lock_tenant(conn, client_id)
    if _name_taken(conn, client_id, name):
        raise NotifyConflictError(f"a channel named {name!r} already exists")
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "client_id": client_id,
        "name": name,
        "kind": kind,
        "settings": dict(settings),
        "secrets": dict(secrets),
        "enabled": enabled,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
    }
    conn.execute(notify_channels.insert().values(**values))
    channel = StoredChannel(**values)
    detail = {
        "name": name,
        "kind": kind,
        "settings": channel.settings,
        "secrets": sorted(channel.secrets),
        "enabled": enabled,
    }
    audit.append(conn, client_id, actor, "notify.channel.created", channel.id, detail, now)
    return channel


def update_channel(
    conn: sa.Connection,
    client_id: str,
    channel_id: str,
    *,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any | None] | None = None,
    enabled: bool | None = None,
    actor: str,
    now: float,
) -> StoredChannel:
    """Change what is given; ``None`` keeps it.

    ``settings`` replaces the settings whole (the caller merges a partial change and validates the
    result). ``secrets`` replaces only the keys it names, keeping the others: a client never reads a
    secret back, so it could not send the unchanged ones; a key given as ``None`` is removed.
    """
    audit.lock_tenant(conn, client_id)
    current = get_channel(conn, client_id, channel_id)
    if name is not None and name != current.name and _name_taken(conn, client_id, name, channel_id):
        raise NotifyConflictError(f"a channel named {name!r} already exists")
    values: dict[str, Any] = {"updated_at": now}
    detail: dict[str, Any] = {}
    if name is not None:
        values["name"] = detail["name"] = name
    if settings is not None:
        values["settings"] = detail["settings"] = dict(settings)
    if secrets is not None:
        merged = dict(current.secrets)
        for key, value in secrets.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        values["secrets"] = merged
        detail["secrets_changed"] = sorted(secrets)
    if enabled is not None:
        values["enabled"] = detail["enabled"] = enabled
    conn.execute(
        notify_channels.update()
        .where(notify_channels.c.client_id == client_id, notify_channels.c.id == channel_id)
        .values(**values)
    )
    audit.append(conn, client_id, actor, "notify.channel.updated", channel_id, detail, now)
    return get_channel(conn, client_id, channel_id)


def delete_channel(
    conn: sa.Connection,
    client_id: str,
    channel_id: str,
    *,
    actor: str,
    now: float,
    in_use: Collection[str] = (),
) -> None:
    """Delete a channel. ``in_use``: the channel names (or ids) the tenant's route tree names; a
    channel among them is refused with ``NotifyConflictError`` (a route would lose its receiver).
    Its deliveries stay, as history; its thread references go."""
    audit.lock_tenant(conn, client_id)
    channel = get_channel(conn, client_id, channel_id)
    if channel.name in in_use or channel.id in in_use:
        raise NotifyConflictError(
            f"channel {channel.name!r} is a receiver in the route tree; remove it from the routes first"
        )
    conn.execute(notify_threads.delete().where(notify_threads.c.channel_id == channel_id))
    conn.execute(
        notify_channels.delete().where(
            notify_channels.c.client_id == client_id, notify_channels.c.id == channel_id
        )
    )
    detail = {"name": channel.name, "kind": channel.kind}
    audit.append(conn, client_id, actor, "notify.channel.deleted", channel_id, detail, now)


def get_channel(conn: sa.Connection, client_id: str, channel_id: str) -> StoredChannel:
    row = conn.execute(
        sa.select(notify_channels).where(
            notify_channels.c.client_id == client_id, notify_channels.c.id == channel_id
        )
    ).first()
    if row is None:
        raise NotifyNotFoundError("channel", channel_id)
    return _channel(row)


def list_channels(conn: sa.Connection, client_id: str) -> list[StoredChannel]:
    """The tenant's channels by name."""
    rows = conn.execute(
        sa.select(notify_channels)
        .where(notify_channels.c.client_id == client_id)
        .order_by(notify_channels.c.name, notify_channels.c.id)
    )
    return [_channel(r) for r in rows]


def channels_by_name(conn: sa.Connection, client_id: str, names: Iterable[str]) -> dict[str, StoredChannel]:
    """The tenant's channels among ``names`` (a route's receivers); names without one are absent."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(notify_channels).where(
            notify_channels.c.client_id == client_id, notify_channels.c.name.in_(wanted)
        )
    )
    return {r.name: _channel(r) for r in rows}


def public_channel(ch: ChannelConfig) -> dict[str, Any]:
    """A channel as the API and the pages show it: every setting, the names of the secrets set,
    never a secret's value. ``created_at``/``updated_at`` are None for a channel not from the store."""
    return {
        "id": ch.id,
        "name": ch.name,
        "kind": ch.kind,
        "settings": dict(ch.settings),
        "secrets_set": sorted(ch.secrets),
        "enabled": ch.enabled,
        "created_at": getattr(ch, "created_at", None),
        "updated_at": getattr(ch, "updated_at", None),
    }


# -- the route tree ------------------------------------------------------------------------------------


def get_routing(conn: sa.Connection, client_id: str) -> RoutingDoc | None:
    """The tenant's stored tree; None when it never stored one (the default tree applies)."""
    row = conn.execute(sa.select(notify_routing).where(notify_routing.c.client_id == client_id)).first()
    if row is None:
        return None
    return RoutingDoc(dict(row.tree), int(row.version), row.updated_at, row.updated_by)


def put_routing(
    conn: sa.Connection,
    client_id: str,
    tree: Mapping[str, Any],
    *,
    expected_version: int | None,
    actor: str,
    now: float,
) -> RoutingDoc:
    """Replace the tree (validated by the caller); its version goes up by one.

    ``expected_version`` is the version the writer read (0: none stored yet); when it is given and
    the stored one differs, another writer came first: ``NotifyConflictError``, nothing written.
    None replaces whatever is stored (the CLI's and a file's "this is the tree").
    """
    audit.lock_tenant(conn, client_id)
    current = get_routing(conn, client_id)
    version = current.version if current is not None else 0
    if expected_version is not None and expected_version != version:
        raise NotifyConflictError(
            f"the route tree changed: it is at version {version}, not {expected_version}; "
            "read it again and re-apply the change"
        )
    doc = RoutingDoc(dict(tree), version + 1, now, actor)
    values = {"tree": doc.tree, "version": doc.version, "updated_at": now, "updated_by": actor}
    if current is None:
        conn.execute(notify_routing.insert().values(client_id=client_id, **values))
    else:
        conn.execute(notify_routing.update().where(notify_routing.c.client_id == client_id).values(**values))
    audit.append(
        conn,
        client_id,
        actor,
        "notify.routes.updated",
        "routes",
        {"version": doc.version, "tree": doc.tree},
        now,
    )
    return doc


# -- silences ------------------------------------------------------------------------------------------


def _silence(row: sa.Row[Any]) -> Silence:
    values = dict(row._mapping)
    del values["expired_by"]
    return Silence(**{**values, "matchers": matchers_from_json(row.matchers)})


def create_silence(
    conn: sa.Connection,
    client_id: str,
    *,
    matchers: Sequence[Matcher],
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    incident_id: str | None = None,
    now: float,
) -> Silence:
    """Store a validated silence (``notify.config.parse_silence`` checked matchers and times)."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "client_id": client_id,
        "matchers": matchers_to_json(matchers),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "created_by": created_by,
        "comment": comment,
        "created_at": now,
        "incident_id": incident_id,
    }
    conn.execute(notify_silences.insert().values(**values))
    silence = Silence(**{**values, "matchers": tuple(matchers)})
    detail = {k: values[k] for k in ("matchers", "starts_at", "ends_at", "comment", "incident_id")}
    audit.append(conn, client_id, created_by, "notify.silence.created", silence.id, detail, now)
    return silence


def expire_silence(
    conn: sa.Connection, client_id: str, silence_id: str, *, actor: str, now: float
) -> Silence:
    """End a silence now (``ends_at`` moves back to ``now``). One already over is left as it is."""
    silence = get_silence(conn, client_id, silence_id)
    if silence.ends_at <= now:
        return silence
    conn.execute(
        notify_silences.update()
        .where(notify_silences.c.client_id == client_id, notify_silences.c.id == silence_id)
        .values(ends_at=now, expired_by=actor)
    )
    audit.append(conn, client_id, actor, "notify.silence.expired", silence_id, {"ends_at": now}, now)
    return get_silence(conn, client_id, silence_id)


def get_silence(conn: sa.Connection, client_id: str, silence_id: str) -> Silence:
    row = conn.execute(
        sa.select(notify_silences).where(
            notify_silences.c.client_id == client_id, notify_silences.c.id == silence_id
        )
    ).first()
    if row is None:
        raise NotifyNotFoundError("silence", silence_id)
    return _silence(row)


def list_silences(
    conn: sa.Connection,
    client_id: str,
    *,
    state: SilenceState | None,
    now: float,
    limit: int = 200,
) -> list[Silence]:
    """The tenant's silences in ``state`` at ``now`` (all when None): active ones and pending ones by
    when they end (soonest first), expired ones latest first."""
    c = notify_silences.c
    q = sa.select(notify_silences).where(c.client_id == client_id)
    if state == "active":
        q = q.where(c.starts_at <= now, c.ends_at > now).order_by(c.ends_at, c.id)
    elif state == "pending":
        q = q.where(c.starts_at > now, c.ends_at > now).order_by(c.starts_at, c.id)
    elif state == "expired":
        q = q.where(c.ends_at <= now).order_by(c.ends_at.desc(), c.id)
    else:
        q = q.order_by(c.created_at.desc(), c.id)
    return [_silence(r) for r in conn.execute(q.limit(limit))]


def active_silences(conn: sa.Connection, client_id: str, now: float) -> list[Silence]:
    """Every silence in force at ``now`` (what a flush applies), without a limit."""
    c = notify_silences.c
    rows = conn.execute(
        sa.select(notify_silences)
        .where(c.client_id == client_id, c.starts_at <= now, c.ends_at > now)
        .order_by(c.ends_at, c.id)
    )
    return [_silence(r) for r in rows]


# -- inhibit rules -------------------------------------------------------------------------------------


def _rule(row: sa.Row[Any]) -> InhibitRule:
    return InhibitRule(
        id=row.id,
        source=matchers_from_json(row.source),
        target=matchers_from_json(row.target),
        equal=tuple(str(e) for e in row.equal),
        name=row.name,
    )


def create_inhibit_rule(
    conn: sa.Connection,
    client_id: str,
    *,
    name: str,
    source: Sequence[Matcher],
    target: Sequence[Matcher],
    equal: Sequence[str],
    actor: str,
    now: float,
) -> InhibitRule:
    """Store a validated rule. A name, when given, is unique per tenant (suppressions cite it)."""
    audit.lock_tenant(conn, client_id)
    c = notify_inhibit_rules.c
    if name and conn.execute(sa.select(c.id).where(c.client_id == client_id, c.name == name)).first():
        raise NotifyConflictError(f"an inhibit rule named {name!r} already exists")
    rule = InhibitRule(str(uuid.uuid4()), tuple(source), tuple(target), tuple(equal), name)
    detail = {
        "name": name,
        "source": matchers_to_json(rule.source),
        "target": matchers_to_json(rule.target),
        "equal": list(rule.equal),
    }
    conn.execute(
        notify_inhibit_rules.insert().values(
            id=rule.id, client_id=client_id, created_at=now, created_by=actor, **detail
        )
    )
    audit.append(conn, client_id, actor, "notify.inhibit.created", rule.id, detail, now)
    return rule


def delete_inhibit_rule(conn: sa.Connection, client_id: str, rule_id: str, *, actor: str, now: float) -> None:
    c = notify_inhibit_rules.c
    deleted = conn.execute(notify_inhibit_rules.delete().where(c.client_id == client_id, c.id == rule_id))
    if deleted.rowcount == 0:
        raise NotifyNotFoundError("inhibit rule", rule_id)
    audit.append(conn, client_id, actor, "notify.inhibit.deleted", rule_id, {}, now)


def list_inhibit_rules(conn: sa.Connection, client_id: str) -> list[InhibitRule]:
    c = notify_inhibit_rules.c
    rows = conn.execute(
        sa.select(notify_inhibit_rules).where(c.client_id == client_id).order_by(c.created_at, c.id)
    )
    return [_rule(r) for r in rows]
