"""Request and response bodies of the HTTP API (pydantic, at the edge only)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from infragent.model import Severity

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    email: str = Field(max_length=320)
    company_name: str = Field(min_length=1, max_length=200)
    webhook_url: AnyHttpUrl

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("not an e-mail address")
        return value


class RegisterOut(BaseModel):
    client_id: str
    api_key: str = Field(description="Shown once; only its hash is stored. An admin key: keep it off hosts.")
    scopes: list[str] = Field(description="The key's scopes: admin, which implies every other.")
    webhook_secret: str = Field(description="Standard Webhooks secret used to sign commands to webhook_url.")


class EventIn(Strict):
    type: str = Field(min_length=1, max_length=100, pattern=_NAME)
    service: str = Field(min_length=1, max_length=200)
    severity: Severity
    data: dict[str, Any] = Field(default_factory=dict)
    node_id: str | None = Field(default=None, min_length=1, max_length=255)


class EventAccepted(BaseModel):
    event_id: str
    status: Literal["received"] = "received"
    incident_id: str | None = Field(
        default=None, description="The incident the event opened or joined (None: not on one yet)."
    )


class EventOut(BaseModel):
    id: str
    type: str
    service: str
    severity: Severity
    node_id: str
    data: dict[str, Any]
    received_at: float
    processed_at: float | None
    status: Literal["pending", "processed"]
    incident_id: str | None = Field(default=None, description="The incident the event opened or joined.")


class AuditOut(BaseModel):
    id: int
    at: float
    actor: str
    kind: str
    subject: str
    detail: dict[str, Any]
    hash: str


class EventDetailOut(EventOut):
    decision: dict[str, Any] | None
    command: dict[str, Any] | None
    audit: list[AuditOut]


class ActionIn(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    params: dict[str, str] = Field(
        default_factory=dict, description="parameter name → regex it must fully match"
    )
    description: str = Field(default="", max_length=500)

    @field_validator("params")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"parameter {name!r}: invalid regex: {exc}") from exc
        return value


class AgentIn(Strict):
    node_id: str = Field(min_length=1, max_length=255)
    kind: Literal["sdk", "host"] = "sdk"
    command_mode: Literal["push", "pull"] = "push"
    actions: list[ActionIn] = Field(default_factory=list, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict)


class AgentOut(BaseModel):
    id: str
    node_id: str
    kind: str
    command_mode: str
    actions: list[str]
    last_seen: float
