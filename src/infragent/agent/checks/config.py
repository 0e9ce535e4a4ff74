"""Health-check definitions, validated once at startup with errors that name check and field.

Why validation at load and frozen dataclasses after it: check definitions come from the agent's
config file — an edge — where a typo must become one clear line (``checks[2] (web).url: Field
required``), not a traceback from the middle of the runner. Past this module the definitions are
frozen values, so a running check cannot be reconfigured under the runner's feet. The validation
is ``agent/schema.py`` (dataclasses and a dozen converters), not pydantic: an agent with checks
must stay within node_exporter's footprint (see there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from infragent.agent.schema import (
    boolean,
    build,
    choice,
    integer,
    number,
    optional,
    setting,
    strings,
    text,
    then,
)
from infragent.errors import ConfigError

StatusRanges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Check:
    """Fields every check has: how often, how long, and how many results flip its state."""

    name: str = setting(text(min_length=1))
    interval_s: float = setting(number(gt=0), 30.0)
    timeout_s: float = setting(number(gt=0), 5.0)
    failures_before_down: int = setting(integer(ge=1), 3)
    successes_before_up: int = setting(integer(ge=1), 1)


def parse_status_ranges(value: object) -> StatusRanges:
    """``"200-399"``, ``"200,204"``, ``200`` or ``[200, 204]`` → ``((200, 399),)`` etc."""
    if isinstance(value, bool):
        raise ValueError("expected a status like 200, '200-399' or a list of them")
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


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


def _status_ranges(value: object) -> StatusRanges:
    try:
        return parse_status_ranges(value)
    except (TypeError, ValueError) as exc:  # int("x") inside a range says only "invalid literal"
        raise ValueError(str(exc)) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCheck(_Check):
    """An HTTP request to ``url``: up when the status is expected and ``body_regex`` (if any) matches."""

    type: Literal["http"] = setting(choice("http"), "http")
    url: str = setting(then(text(), _http_url))
    method: Literal["GET", "HEAD", "POST"] = setting(choice("GET", "HEAD", "POST"), "GET")
    expect_status: StatusRanges = setting(_status_ranges, ((200, 399),))  # noqa: RUF009 - a dataclasses.field
    body_regex: str | None = setting(optional(then(text(), _regex)), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpCheck(_Check):
    """A TCP connection to ``host:port``, opened and closed."""

    type: Literal["tcp"] = setting(choice("tcp"), "tcp")
    host: str = setting(text(min_length=1))
    port: int = setting(integer(ge=1, le=65535))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessCheck(_Check):
    """A process by executable name, or the pid recorded in a pidfile; exactly one of the two.

    ``watch_exit``: also hold a pidfd on the process found up, so its exit is known at once and
    reported as ``app_down`` without waiting for the next poll (``checks/exitwatch.py``).
    """

    type: Literal["process"] = setting(choice("process"), "process")
    process_name: str | None = setting(optional(text(min_length=1)), None)
    pidfile: str | None = setting(optional(text(min_length=1)), None)
    watch_exit: bool = setting(boolean, False)

    def __post_init__(self) -> None:
        if (self.process_name is None) == (self.pidfile is None):
            raise ValueError("set exactly one of process_name or pidfile")


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemdCheck(_Check):
    """``systemctl is-active UNIT``; unavailable where systemd is not PID 1."""

    type: Literal["systemd"] = setting(choice("systemd"), "systemd")
    unit: str = setting(text(min_length=1, pattern=r"^[A-Za-z0-9:_.@\\-]+$"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandCheck(_Check):
    """An argv run without a shell; exit code 0 means up. Output beyond the cap is dropped."""

    type: Literal["command"] = setting(choice("command"), "command")
    argv: tuple[str, ...] = setting(strings(min_length=1))
    output_cap_bytes: int = setting(integer(ge=0, le=1_048_576), 4096)


CheckConfig = HttpCheck | TcpCheck | ProcessCheck | SystemdCheck | CommandCheck
_CLASSES: dict[str, type[CheckConfig]] = {
    "http": HttpCheck,
    "tcp": TcpCheck,
    "process": ProcessCheck,
    "systemd": SystemdCheck,
    "command": CommandCheck,
}
CHECK_TYPES = tuple(_CLASSES)


def parse_check(raw: Mapping[str, Any], key: str = "checks") -> CheckConfig:
    """Validate one check; a problem is a ``ConfigError`` whose key names the check and field."""
    name = raw.get("name") if isinstance(raw, Mapping) else None
    where = f"{key} ({name})" if isinstance(name, str) and name else key
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "each check must be a mapping")
    kind = raw.get("type")
    if kind not in CHECK_TYPES:
        raise ConfigError(f"{where}.type", f"must be one of {', '.join(CHECK_TYPES)}, got {kind!r}")
    return build(_CLASSES[kind], raw, where)


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
