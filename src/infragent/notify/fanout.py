"""What every step of the pipeline shares: a tenant's route tree and mute inputs, read once per
unit of work, and turning one message into one delivery per receiving channel.

The route tree. A tenant with a stored tree (``notify_routing``) routes by it, parsed with the
server's defaults (``notify_group_wait_s`` …). A tenant WITHOUT a stored tree gets a default tree:
one root route whose receivers are all of the tenant's enabled channels, with the server's
default timings and grouping — so adding a first channel is enough to be notified. A stored tree
that no longer parses (it was valid when saved; a later version may read it differently) is logged
and the default tree is used rather than dropping the notification.

Receivers are channel names. A receiver that names no enabled channel still gets a delivery: a
``dead`` one whose ``last_error`` says ``no enabled channel named 'x'``, so a route pointing at a
deleted or disabled channel shows up in the dead-letter list instead of going quiet. (It gets no
``notify.delivery.dead`` audit entry: the audit chain's lock is the tenant's lock, which a flush —
holding its group's row — must not wait for; ``notify/pipeline.py`` explains the lock order.)
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import sqlalchemy as sa

from infragent.config import Settings
from infragent.notify.config import RootDefaults, parse_route_tree
from infragent.notify.errors import NotifyConfigError
from infragent.notify.model import InhibitRule, Message, Route, RouteMatch, Silence, Suppression
from infragent.notify.mute import verdict
from infragent.notify.route import incident_labels
from infragent.store import deliveries, notify_config, notify_inputs

logger = logging.getLogger(__name__)

#: Room in ``notify_deliveries.channel_id`` for the name of a missing channel.
_CHANNEL_ID_LEN = 36


def root_defaults(settings: Settings, receivers: Sequence[str] = ()) -> RootDefaults:
    return RootDefaults(
        group_wait_s=settings.notify_group_wait_s,
        group_interval_s=settings.notify_group_interval_s,
        repeat_interval_s=settings.notify_repeat_interval_s,
        receivers=tuple(receivers),
    )


def default_tree(conn: sa.Connection, client_id: str, settings: Settings) -> Route:
    """The tree of a tenant that stored none: every enabled channel receives everything."""
    names = tuple(c.name for c in notify_config.list_channels(conn, client_id) if c.enabled)
    return parse_route_tree({}, root_defaults(settings, names))


def load_tree(conn: sa.Connection, client_id: str, settings: Settings) -> Route:
    stored = notify_config.get_routing(conn, client_id)
    if stored is None:
        return default_tree(conn, client_id, settings)
    try:
        return parse_route_tree(stored.tree, root_defaults(settings))
    except NotifyConfigError as exc:
        logger.error(
            "tenant %s: the stored route tree does not parse (%s); using the default tree", client_id, exc
        )
        return default_tree(conn, client_id, settings)


def describe(suppression: Suppression) -> str:
    """What ``suppressed_by`` says: ``silence <id>``, ``inhibited by <rule>``, ``muted: <why>``."""
    if suppression.verdict == "silenced":
        return f"silence {suppression.by}"
    if suppression.verdict == "inhibited":
        return f"inhibited by {suppression.by}"
    return f"muted: {suppression.by or suppression.verdict}"


class TenantView:
    """One tenant's routing inputs within one transaction, each read on first use."""

    def __init__(self, conn: sa.Connection, client_id: str, settings: Settings, now: float) -> None:
        self.conn = conn
        self.client_id = client_id
        self.settings = settings
        self.now = now
        self._root: Route | None = None
        self._silences: list[Silence] | None = None
        self._rules: list[InhibitRule] | None = None
        self._firing: list[dict[str, str]] | None = None

    @property
    def root(self) -> Route:
        if self._root is None:
            self._root = load_tree(self.conn, self.client_id, self.settings)
        return self._root

    @property
    def silences(self) -> list[Silence]:
        if self._silences is None:
            self._silences = list(notify_config.active_silences(self.conn, self.client_id, self.now))
        return self._silences

    @property
    def inhibit_rules(self) -> list[InhibitRule]:
        if self._rules is None:
            self._rules = list(notify_config.list_inhibit_rules(self.conn, self.client_id))
        return self._rules

    @property
    def firing_label_sets(self) -> list[dict[str, str]]:
        """The labels of the tenant's unresolved incidents: what may inhibit (read only when the
        tenant has inhibit rules)."""
        if self._firing is None:
            self._firing = (
                [incident_labels(i) for i in notify_inputs.unresolved(self.conn, self.client_id)]
                if self.inhibit_rules
                else []
            )
        return self._firing

    def verdict(self, match: RouteMatch, labels: Mapping[str, str], kind: str) -> Suppression:
        return verdict(
            match,
            labels,
            silences=self.silences,
            inhibit_rules=self.inhibit_rules,
            firing_label_sets=self.firing_label_sets,
            now=self.now,
            kind=kind,
        )


def missing_channel_key(name: str) -> str:
    """The ``channel_id`` of a delivery to a channel that does not exist: its name, shortened with
    a digest when too long for the column (so two long names still differ)."""
    if len(name) <= _CHANNEL_ID_LEN:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _CHANNEL_ID_LEN - 9]}~{digest}"


def create_deliveries(
    conn: sa.Connection,
    settings: Settings,
    message: Message,
    *,
    receivers: Iterable[str],
    cause: str,
    now: float,
    group_id: str | None = None,
    incident_id: str | None = None,
    route_id: str | None = None,
    suppressed_by: str | None = None,
) -> int:
    """One delivery of ``message`` per receiver (``pending``, ``suppressed`` when ``suppressed_by``
    is given, ``dead`` for a receiver naming no enabled channel); returns how many pending ones
    were created. Idempotent per ``cause``: a second call inserts nothing."""
    names = list(dict.fromkeys(receivers))
    channels = notify_config.channels_by_name(conn, message.client_id, names)
    created = 0
    deadline = now + settings.notify_retry_for_s
    for name in names:
        channel = channels.get(name)
        one = replace(message, id=str(uuid.uuid4()))
        if channel is None or not channel.enabled:
            deliveries.insert_delivery(
                conn,
                one,
                channel_id=missing_channel_key(name),
                cause=cause,
                now=now,
                deadline_at=now,
                status="dead",
                last_error=f"no enabled channel named {name!r}",
                group_id=group_id,
                incident_id=incident_id,
                route_id=route_id,
            )
        elif suppressed_by is not None:
            deliveries.insert_delivery(
                conn,
                one,
                channel_id=channel.id,
                cause=cause,
                now=now,
                deadline_at=now,
                status="suppressed",
                suppressed_by=suppressed_by,
                group_id=group_id,
                incident_id=incident_id,
                route_id=route_id,
            )
        elif deliveries.insert_delivery(
            conn,
            one,
            channel_id=channel.id,
            cause=cause,
            now=now,
            deadline_at=deadline,
            group_id=group_id,
            incident_id=incident_id,
            route_id=route_id,
        ):
            created += 1
    return created
