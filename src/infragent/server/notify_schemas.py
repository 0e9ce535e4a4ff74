"""Request and response bodies of the notification API (pydantic, at the edge only): docs/api.md
"Notifications".

Why the request bodies are loose (``Any`` where the documented shape is richer): the documents are
validated by ``notify/config.py``, which reports every fault at once with its path in the body's
terms (``settings.port``, ``matchers[0].value``, ``routes[1].group_wait``); a strict pydantic model
would stop at the first layer with a different shape of error. The answers are typed.

No answer carries a channel's secret: ``ChannelOut`` has the names of the secrets set
(``secrets_set``) and nothing else of them; only a generated webhook signing secret is returned,
once, in the create answer (``signing_secret``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infragent.notify.model import ChannelKind, InhibitRule, Silence
from infragent.store.notify_config import matchers_to_json
from infragent.store.notify_reads import AttemptView, DeliveryView, InboxItem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- channels ----------------------------------------------------------------------------------------


class ChannelIn(Strict):
    name: str = Field(min_length=1, max_length=100, description="Unique in the tenant; routes name it.")
    kind: ChannelKind
    settings: dict[str, Any] = Field(default_factory=dict, description="Returned as given (not secret).")
    secrets: dict[str, Any] = Field(
        default_factory=dict, description="Write-only: stored, never returned (see secrets_set)."
    )
    enabled: bool = True


class ChannelPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    settings: dict[str, Any] | None = Field(
        default=None, description="Merged into the settings; a field set to null is removed."
    )
    secrets: dict[str, Any] | None = Field(
        default=None, description="The secrets named are replaced (null removes one); the others are kept."
    )
    enabled: bool | None = None


class ChannelOut(BaseModel):
    id: str
    name: str
    kind: str
    settings: dict[str, Any]
    secrets_set: list[str] = Field(description="The names of the secrets stored; never their values.")
    enabled: bool
    created_at: float | None
    updated_at: float | None


class ChannelCreatedOut(ChannelOut):
    signing_secret: str | None = Field(
        default=None,
        description="A webhook channel created without a secret gets one (Standard Webhooks, whsec_…): "
        "shown here once, never again.",
    )


class ChannelListOut(BaseModel):
    channels: list[ChannelOut]


class TestIn(Strict):
    template: dict[str, str] | None = Field(
        default=None, description="Try a template: keys title, text, html (Jinja2, sandboxed)."
    )


class TestOut(BaseModel):
    outcome: Literal["delivered", "retry", "failed"]
    status_code: int | None = Field(description="The receiver's HTTP status or SMTP reply code.")
    error: str | None


# -- routes ------------------------------------------------------------------------------------------


class RoutingOut(BaseModel):
    tree: dict[str, Any] = Field(description="The route tree (docs/notifications.md).")
    version: int = Field(description="Send it back with PUT: a tree changed since is a 409. 0: the default.")
    updated_at: float | None
    updated_by: str | None
    default: bool = Field(description="true: the tenant never stored a tree; this is the default one.")


class RoutingIn(Strict):
    tree: dict[str, Any]
    version: int | None = Field(
        default=None, ge=0, description="The version read; a tree changed since is a 409. null: replace."
    )


class RouteAddIn(Strict):
    parent: str = Field(default="root", description="The id of the route to add under.")
    route: dict[str, Any]
    version: int | None = Field(default=None, ge=0)


class RoutePutIn(Strict):
    route: dict[str, Any]
    version: int | None = Field(default=None, ge=0)


class RouteOut(BaseModel):
    route: dict[str, Any]
    version: int


# -- silences and inhibit rules ------------------------------------------------------------------------


class SilenceIn(Strict):
    matchers: Any = Field(
        default=None,
        description='["host=\\"web-1\\""] or [{"name","op","value"}]; omitted with incident_id: '
        "the incident's labels",
    )
    starts_at: Any = Field(default=None, description="Unix seconds or RFC 3339; default now.")
    ends_at: Any = Field(default=None, description="Unix seconds or RFC 3339 (or give duration).")
    duration: Any = Field(default=None, description='"2h", "30m", or seconds.')
    comment: Any = Field(default=None, description="Why; required.")
    incident_id: str | None = Field(default=None, max_length=36)


class MatcherOut(BaseModel):
    name: str
    op: str
    value: str


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherOut]
    starts_at: float
    ends_at: float
    state: Literal["active", "pending", "expired"]
    created_by: str
    comment: str
    created_at: float
    incident_id: str | None

    @classmethod
    def of(cls, s: Silence, now: float) -> SilenceOut:
        state: Literal["active", "pending", "expired"] = (
            "expired" if s.ends_at <= now else "pending" if s.starts_at > now else "active"
        )
        return cls(
            id=s.id,
            matchers=[MatcherOut(**m) for m in matchers_to_json(s.matchers)],
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            state=state,
            created_by=s.created_by,
            comment=s.comment,
            created_at=s.created_at,
            incident_id=s.incident_id,
        )


class SilenceListOut(BaseModel):
    silences: list[SilenceOut]


class InhibitIn(Strict):
    name: Any = ""
    source: Any = None
    target: Any = None
    equal: Any = None


class InhibitOut(BaseModel):
    id: str
    name: str
    source: list[MatcherOut]
    target: list[MatcherOut]
    equal: list[str]

    @classmethod
    def of(cls, rule: InhibitRule) -> InhibitOut:
        return cls(
            id=rule.id,
            name=rule.name,
            source=[MatcherOut(**m) for m in matchers_to_json(rule.source)],
            target=[MatcherOut(**m) for m in matchers_to_json(rule.target)],
            equal=list(rule.equal),
        )


class InhibitListOut(BaseModel):
    rules: list[InhibitOut]


# -- deliveries and the inbox ----------------------------------------------------------------------------


class DeliveryOut(BaseModel):
    id: str = Field(description="Also the idempotency key receivers see (webhook-id).")
    channel_id: str
    channel_name: str | None = Field(description="null: the channel was deleted since.")
    channel_kind: str | None
    kind: str
    status: Literal["pending", "sending", "delivered", "dead", "suppressed"]
    attempts: int
    created_at: float
    next_attempt_at: float
    deadline_at: float
    delivered_at: float | None
    last_error: str | None
    last_status_code: int | None
    suppressed_by: str | None
    incident_ids: list[str]
    title: str
    group_id: str | None
    route_id: str | None

    @classmethod
    def of(cls, d: DeliveryView) -> DeliveryOut:
        fields = {name: getattr(d, name) for name in cls.model_fields}
        return cls(**fields)


class AttemptOut(BaseModel):
    n: int
    started_at: float
    duration_s: float
    outcome: str
    status_code: int | None
    retry_after_s: float | None
    error: str | None
    worker: str

    @classmethod
    def of(cls, a: AttemptView) -> AttemptOut:
        return cls(**{name: getattr(a, name) for name in cls.model_fields})


class DeliveryDetailOut(DeliveryOut):
    attempts_made: list[AttemptOut] = Field(description="Every attempt, first first.")


class DeliveryPageOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last.")


class InboxItemOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    incident_id: str | None
    created_at: float
    read_at: float | None

    @classmethod
    def of(cls, item: InboxItem) -> InboxItemOut:
        return cls(**{name: getattr(item, name) for name in cls.model_fields})


class InboxOut(BaseModel):
    items: list[InboxItemOut]
    unread: int


class InboxCountOut(BaseModel):
    unread: int


class InboxReadIn(Strict):
    ids: list[int] | None = Field(default=None, description="The items to mark read; omitted: all.")


class InboxReadOut(BaseModel):
    marked: int
    unread: int
