"""Notifications as plain values: the contract between the routing core, the outbox pipeline, the
channel adapters, the API and the dashboard.

The path of a notification (``docs/notifications.md``):

1. an incident change (opened, reopened, resolved, escalated, acknowledged; an approval request)
   writes a *change* row in the same transaction (``store/outbox.enqueue_change``);
2. the pipeline (``notify/pipeline.py``) routes each change through the tenant's route tree
   (``notify/route.py``, Alertmanager's shape) into *aggregation groups*; a group flushes after
   ``group_wait``, then at most every ``group_interval``, and repeats after ``repeat_interval``;
   silences, inhibition and mute times are applied at flush (``notify/mute.py``); the group row
   keeps what was last sent (the notification log, Alertmanager's *nflog*), so restarts and several
   processes never send a group notification twice;
3. a flush writes one *delivery* per receiving channel, with its ``Message`` snapshot; the delivery
   worker (``notify/deliver.py``) claims due deliveries, renders them (``notify/render.py``) and
   calls the channel adapter's ``send``, records the attempt, and retries with the shared backoff
   until delivered or dead-lettered.

Values only: no I/O, no clock. ``Channel`` is the port every adapter implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

#: What a notification tells. ``firing``/``resolved`` come from aggregation groups; the others are
#: sent at once, per incident: ``escalated`` (the incident's status became escalated),
#: ``acknowledged``, ``escalation`` (an escalation-policy step: still not acknowledged after N
#: minutes), ``approval`` (the responder asks a person to approve an action), ``test`` (a test send).
NotificationKind = Literal[
    "firing", "resolved", "escalated", "acknowledged", "escalation", "approval", "test"
]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = (
    "firing",
    "resolved",
    "escalated",
    "acknowledged",
    "escalation",
    "approval",
    "test",
)
#: What a route notifies on when it does not say (``Route.notify_on``).
DEFAULT_NOTIFY_ON: frozenset[str] = frozenset({"firing", "resolved", "escalated", "acknowledged", "approval"})

#: What a change row records (``notify_changes.kind``): the incident event that caused it.
ChangeKind = Literal["opened", "reopened", "resolved", "escalated", "acknowledged", "approval"]

ChannelKind = Literal[
    "webhook", "slack", "slack_bot", "discord", "teams", "pagerduty", "email", "inapp", "apprise"
]
CHANNEL_KINDS: tuple[ChannelKind, ...] = (
    "webhook",
    "slack",
    "slack_bot",
    "discord",
    "teams",
    "pagerduty",
    "email",
    "inapp",
    "apprise",
)

#: Per kind: the settings (non-secret, returned by the API) and the secrets (write-only: stored, never
#: returned, never logged, masked in audit). ``notify/config.py`` validates both, field by field.
CHANNEL_FIELDS: dict[ChannelKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # Standard Webhooks signing secret (``whsec_…``): generated when not given, shown once
    "webhook": (("url",), ("secret",)),
    # an incoming-webhook URL is itself the credential
    "slack": ((), ("url",)),
    # bot token (``xoxb-…``), channel id; ``api_url`` defaults to https://slack.com/api
    "slack_bot": (("channel", "api_url"), ("token",)),
    "discord": ((), ("url",)),
    # a Teams workflow ("Post to a channel when a webhook request is received") URL
    "teams": ((), ("url",)),
    # ``url`` defaults to https://events.pagerduty.com/v2/enqueue
    "pagerduty": (("url", "severity_map"), ("routing_key",)),
    # ``security``: "starttls" | "tls" | "none"; ``to``: a list of addresses
    "email": (("host", "port", "security", "username", "from", "to"), ("password",)),
    # ``roles``: which members receive it (default every role); no secret
    "inapp": (("roles",), ()),
    # one or more apprise URLs (they embed tokens, so they are secret)
    "apprise": ((), ("urls",)),
}

DeliveryStatus = Literal["pending", "sending", "delivered", "dead", "suppressed"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "sending", "delivered", "dead", "suppressed")
#: What one attempt came to: ``retry`` is tried again (429, 5xx, transport errors) until the
#: delivery's deadline; ``failed`` is final at once (any other 4xx, a refused address, bad config).
AttemptOutcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """One incident as a message shows it: what, where, since when, value, link, responder."""

    id: str
    title: str
    severity: str
    status: str
    fingerprint: str
    labels: dict[str, str]
    opened_at: float
    rule_name: str | None = None
    resolved_at: float | None = None
    acknowledged_by: str | None = None
    #: the latest value the rule saw (formatted), when the incident came from an alert
    value: str | None = None
    #: what the responder is doing or did last ("restart_service on web-1: ok"), if anything
    responder: str | None = None
    #: the dashboard page of the incident (``public_url`` + ``/incidents/{id}``); "" when unknown
    url: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery sends: a snapshot taken when it was created, so a retry sends the same.

    ``id`` is the delivery id and the idempotency key (``webhook-id``; the Slack bot's thread key is
    the incident id). ``title``/``text``/``html`` are filled by ``notify/render.py`` just before
    sending; the structured fields let an adapter build its native layout (Block Kit, cards).
    """

    id: str
    client_id: str
    kind: NotificationKind
    incidents: tuple[IncidentSummary, ...]
    created_at: float
    #: the labels the group is keyed by (empty for per-incident kinds)
    group_labels: dict[str, str] = field(default_factory=dict)
    #: counts in the group when it was flushed (firing ones may be more than ``incidents`` shows)
    firing_count: int = 0
    resolved_count: int = 0
    #: extra facts for ``approval`` (action, parameters, expiry, link) and ``escalation`` (step)
    detail: dict[str, Any] = field(default_factory=dict)
    #: per-route template override (``Route.template``): keys ``title``, ``text``, ``html``
    template: dict[str, str] = field(default_factory=dict)
    #: thread references already known for the incidents, per incident id (the Slack bot's ``ts``)
    threads: dict[str, str] = field(default_factory=dict)
    title: str = ""
    text: str = ""
    html: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one ``send`` came to: a value, never an exception."""

    outcome: AttemptOutcome
    #: the receiver's HTTP status (or SMTP reply code), when there was one
    status_code: int | None = None
    #: the receiver's ``Retry-After`` in seconds, when it sent one (a floor for the next wait)
    retry_after_s: float | None = None
    #: why it failed, for people: short, never containing a secret
    error: str | None = None
    #: thread references created by this send, per incident id (Slack bot ``ts``), to be stored
    threads: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """A stored channel with its secrets, as the delivery worker hands it to ``build_channel``."""

    id: str
    client_id: str
    name: str
    kind: ChannelKind
    settings: dict[str, Any]
    secrets: dict[str, Any] = field(repr=False)
    enabled: bool = True


class Channel(Protocol):
    """A channel adapter: one ``send`` that returns what became of it (``notify/channels/``)."""

    def send(self, message: Message) -> DeliveryResult: ...


# -- routing values (notify/route.py, notify/mute.py) ----------------------------------------------

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher as in Alertmanager: ``name op value``; regexes are fully anchored."""

    name: str
    op: MatchOp
    value: str


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Minutes since midnight, ``start`` inclusive, ``end`` exclusive (``"09:00"`` to ``"17:00"``)."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """When a route is muted (``mute_times``) or active (``active_times``); empty parts mean "any".

    Weekdays are 0 = Monday … 6 = Sunday; days of month 1-31 (negative counts from the end);
    months 1-12. Evaluated in ``time_zone`` (IANA name; default UTC).
    """

    weekdays: tuple[int, ...] = ()
    times: tuple[TimeRange, ...] = ()
    days_of_month: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Notify ``receivers`` when an incident is still not acknowledged ``after_s`` after it opened."""

    after_s: float
    receivers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """A node of a tenant's route tree. ``None`` means "inherit from the parent" (the root has every
    value set: the defaults in ``notify/config.py``). ``receivers`` are channel names."""

    id: str
    matchers: tuple[Matcher, ...] = ()
    receivers: tuple[str, ...] | None = None
    #: label names; ``("...",)`` groups by every label (one notification per incident)
    group_by: tuple[str, ...] | None = None
    group_wait_s: float | None = None
    group_interval_s: float | None = None
    repeat_interval_s: float | None = None
    #: keep trying the next siblings after this route matched
    continue_: bool = False
    mute_times: tuple[TimeInterval, ...] = ()
    active_times: tuple[TimeInterval, ...] = ()
    notify_on: frozenset[str] | None = None
    escalation: tuple[EscalationStep, ...] = ()
    template: dict[str, str] | None = None
    routes: tuple[Route, ...] = ()
    name: str = ""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route an incident's labels reached, with every inherited value resolved."""

    route_id: str
    receivers: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    mute_times: tuple[TimeInterval, ...]
    active_times: tuple[TimeInterval, ...]
    notify_on: frozenset[str]
    escalation: tuple[EscalationStep, ...]
    template: dict[str, str]


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes every incident whose labels match all ``matchers`` between ``starts_at`` and ``ends_at``."""

    id: str
    client_id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    #: the incident it was created from, if any (the incident page's "silence" button)
    incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """While an incident matching ``source`` fires, incidents matching ``target`` with equal values
    of every ``equal`` label are not notified (e.g. host silent mutes the rest of that host)."""

    id: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    name: str = ""


Verdict = Literal["send", "silenced", "inhibited", "muted", "inactive"]


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why an incident was not notified at a flush: the verdict and what caused it (silence id,
    inhibit rule id or name, the time interval)."""

    verdict: Verdict
    by: str = ""
