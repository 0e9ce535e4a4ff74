"""Health-check definitions, validated once at startup with errors that name check and field.

Why pydantic here and frozen dataclasses elsewhere: check definitions come from the agent's
config file — an edge — where a typo must become one clear line (``checks[2] (web).url: Field
required``), not a traceback from the middle of the runner. Past this module the models are
frozen values, so a running check cannot be reconfigured under the runner's feet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from infragent.errors import ConfigError

StatusRanges = tuple[tuple[int, int], ...]


class _Check(BaseModel):
    """Fields every check has: how often, how long, and how many results flip its state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    interval_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(5.0, gt=0)
    failures_before_down: int = Field(3, ge=1)
    successes_before_up: int = Field(1, ge=1)


def parse_status_ranges(value: object) -> StatusRanges:
    """``"200-399"``, ``"200,204"``, ``200`` or ``[200, 204]`` → ``((200, 399),)`` etc."""
    if isinstance(value, int):
        parts: list[Any] = [value]
    elif isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ValueError("expected a status like 200, '200-399' or a list of them")
    ranges: list[tuple[int, int]] = []
    for part in parts:
        if isinstance(part, tuple | list) and len(part) == 2:
            low, high = int(part[0]), int(part[1])
        elif isinstance(part, str) and "-" in part:
            low_text, high_text = part.split("-", 1)
            low, high = int(low_text), int(high_text)
        else:
            low = high = int(part)
        if not 100 <= low <= high <= 599:
            raise ValueError(f"status range {low}-{high} is not within 100-599")
        ranges.append((low, high))
    if not ranges:
        raise ValueError("at least one status is required")
    return tuple(ranges)


def format_status_ranges(ranges: StatusRanges) -> str:
    return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in ranges)


class HttpCheck(_Check):
    type: Literal["http"] = "http"
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: StatusRanges = ((200, 399),)
    body_regex: str | None = None

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _parse_status(cls, value: object) -> StatusRanges:
        return parse_status_ranges(value)

    @field_validator("body_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class TcpCheck(_Check):
    type: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class ProcessCheck(_Check):
    """A process by executable name, or the pid recorded in a pidfile; exactly one of the two."""

    type: Literal["process"] = "process"
    process_name: str | None = Field(None, min_length=1)
    pidfile: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one_target(self) -> ProcessCheck:
        if (self.process_name is None) == (self.pidfile is None):
            raise ValueError("set exactly one of process_name or pidfile")
        return self


class SystemdCheck(_Check):
    type: Literal["systemd"] = "systemd"
    unit: str = Field(min_length=1, pattern=r"^[A-Za-z0-9:_.@\\-]+$")


class CommandCheck(_Check):
    """An argv run without a shell; exit code 0 means up. Output beyond the cap is dropped."""

    type: Literal["command"] = "command"
    argv: tuple[str, ...] = Field(min_length=1)
    output_cap_bytes: int = Field(4096, ge=0, le=1_048_576)


CheckConfig = Annotated[
    HttpCheck | TcpCheck | ProcessCheck | SystemdCheck | CommandCheck, Field(discriminator="type")
]
CHECK_TYPES = ("http", "tcp", "process", "systemd", "command")

_ADAPTER: TypeAdapter[CheckConfig] = TypeAdapter(CheckConfig)


def parse_check(raw: Mapping[str, Any], key: str = "checks") -> CheckConfig:
    """Validate one check; a problem is a ``ConfigError`` whose key names the check and field."""
    name = raw.get("name")
    where = f"{key} ({name})" if isinstance(name, str) and name else key
    kind = raw.get("type")
    if kind not in CHECK_TYPES:
        raise ConfigError(f"{where}.type", f"must be one of {', '.join(CHECK_TYPES)}, got {kind!r}")
    try:
        return _ADAPTER.validate_python(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        # The first location item is the union tag ("http"); the rest is the field path.
        fields = "".join(f".{part}" for part in error["loc"][1:])
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}{fields}", message) from exc


def parse_checks(raw: Sequence[Mapping[str, Any]]) -> list[CheckConfig]:
    """Validate a list of checks; names must be unique, they key state and events."""
    checks: list[CheckConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        check = parse_check(item, key=f"checks[{index}]")
        if check.name in seen:
            raise ConfigError(f"checks[{index}] ({check.name}).name", "duplicate check name")
        seen.add(check.name)
        checks.append(check)
    return checks
