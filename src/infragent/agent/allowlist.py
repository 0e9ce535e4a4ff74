"""The host agent's local allowlist: which actions may run here, and exactly how.

Why a second allowlist when the server already checks one: the server's copy is what the agent
*reported*; this one is what the host owner *configured*. A compromised server, a confused
responder or an LLM that talks its way past policy still cannot make the agent run anything that
is not rendered from this file — complete mediation, checked again at the last hop.

Why argument-vector templates (``["systemctl", "restart", "{unit}"]``) and not command strings:
nothing is ever split on spaces or handed to a shell, so a parameter is one argv element (or part
of one) whatever it contains. On top of that every parameter is declared with a regex that the
value must *fully* match, control characters are refused outright, and the program itself
(``script.path``, ``process.start[0]``, ``systemctl``) can never come from a parameter.

Config (the agent's YAML ``actions:`` section)::

    actions:
      - {name: restart-nginx, kind: systemd, op: restart, unit: nginx.service}
      - name: restart
        kind: systemd
        op: restart
        unit: "{unit}.service"
        params: {unit: "[a-z0-9][a-z0-9@_-]{0,63}"}
      - name: rotate-logs
        kind: script
        path: /usr/local/lib/infragent/rotate.sh
        args: ["--app", "{app}"]
        params: {app: "[a-z]+"}
        timeout_s: 60
      - name: restart-worker
        kind: process
        pidfile: /run/worker.pid
        stop_signal: SIGTERM
        start: ["/usr/local/bin/worker", "--daemon"]
      - {name: flush-cache, kind: http, method: POST, url: "http://127.0.0.1:8080/admin/flush"}

A mistake (unknown key, undeclared ``{placeholder}``, non-loopback URL, bad regex) is a
``ConfigError`` naming ``actions[i] (name).field`` at startup, never a surprise at run time. The
definitions are frozen dataclasses validated by ``agent/schema.py``, and a URL's host is read by
the same parser (``agent/http.split_url``) as the client that later connects to it: an agent with
actions imports neither pydantic nor httpx.
"""

from __future__ import annotations

import re
import signal
import string
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from infragent.agent.http import split_url
from infragent.agent.schema import (
    build,
    choice,
    integer,
    number,
    optional,
    setting,
    string_map,
    strings,
    text,
    then,
)
from infragent.errors import ConfigError, InfrAgentError

if TYPE_CHECKING:
    from infragent.model import ActionSpec

ActionKind = Literal["systemd", "process", "script", "http"]
ACTION_KINDS: tuple[str, ...] = ("systemd", "process", "script", "http")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: No legitimate unit name, app name or path segment is longer; a huge value is an attack.
MAX_PARAM_CHARS = 1024
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Piece = tuple[str, str | None]  # (literal text, parameter name or None)


class RejectedError(InfrAgentError):
    """A command that must not run here: unknown action, bad or missing parameter. Never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_template(template: str) -> tuple[Piece, ...]:
    """Split ``"{unit}.service"`` into literal/parameter pieces; raise ValueError on anything odd.

    Only bare ``{name}`` is accepted: no ``{a.b}``, ``{a[0]}``, ``{a!r}`` or ``{a:>9}``, so a
    template can never reach into an object the way ``str.format`` can. ``{{`` and ``}}`` escape.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from exc
    pieces: list[Piece] = []
    for literal, field_name, spec, conversion in parsed:
        if field_name is None:
            pieces.append((literal, None))
            continue
        if spec or conversion or not _PARAM_NAME.fullmatch(field_name):
            raise ValueError(f"bad placeholder {{{field_name}}} in {template!r}: use a bare {{name}}")
        pieces.append((literal, field_name))
    return tuple(pieces)


def _placeholders(templates: Iterable[str]) -> set[str]:
    return {name for t in templates for _, name in parse_template(t) if name is not None}


def _substitute(template: str, values: Mapping[str, str], quote: bool = False) -> str:
    out: list[str] = []
    for literal, name in parse_template(template):
        out.append(literal)
        if name is not None:
            out.append(urllib.parse.quote(values[name], safe="") if quote else values[name])
    return "".join(out)


def _params(value: dict[str, str]) -> dict[str, str]:
    for param, pattern in value.items():
        if not _PARAM_NAME.fullmatch(param):
            raise ValueError(f"parameter name {param!r} must be an identifier")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"parameter {param!r} has a bad regex: {exc}") from exc
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class _Action:
    """Fields every action has; ``params`` maps each placeholder to the regex its value must match.

    ``__post_init__`` runs the kind's own cross-field rules (``_check``), then checks that every
    placeholder is declared and every declared parameter used. (No ``super()`` in these classes:
    it does not work in ``slots=True`` dataclasses before Python 3.14.)
    """

    name: str = setting(text(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"))
    description: str = setting(text(), "")
    params: dict[str, str] = setting(then(string_map, _params), {})  # noqa: RUF009 - a dataclasses.field
    timeout_s: float = setting(number(gt=0, le=3600), 30.0)
    # The server stores at most 1,000,000 characters of output per result.
    output_cap_bytes: int = setting(integer(ge=0, le=512 * 1024), 64 * 1024)

    def templates(self) -> tuple[str, ...]:
        """Every string that may hold a placeholder; the program itself is never among them."""
        return ()

    def _check(self) -> None:
        """Rules between this kind's fields; raise ``ValueError`` saying what is wrong."""

    def __post_init__(self) -> None:
        self._check()
        used = _placeholders(self.templates())
        if undeclared := sorted(used - self.params.keys()):
            raise ValueError(f"placeholder(s) {undeclared} have no pattern in params")
        if unused := sorted(self.params.keys() - used):
            raise ValueError(f"params {unused} are declared but used by no template")


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemdAction(_Action):
    """``systemctl OP UNIT``; the unit may hold ``{param}`` templates."""

    kind: Literal["systemd"] = setting(choice("systemd"))
    op: Literal["restart", "start", "stop", "reload"] = setting(choice("restart", "start", "stop", "reload"))
    unit: str = setting(text(min_length=1))

    def templates(self) -> tuple[str, ...]:
        return (self.unit,)


def _fixed_absolute(value: str) -> str:
    if not value.startswith("/") or "{" in value or "}" in value:
        raise ValueError("must be an absolute path without placeholders")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptAction(_Action):
    """A fixed absolute script path, run without a shell; its arguments may hold ``{param}`` templates."""

    kind: Literal["script"] = setting(choice("script"))
    path: str = setting(then(text(), _fixed_absolute))
    args: tuple[str, ...] = setting(strings(), ())

    def templates(self) -> tuple[str, ...]:
        return self.args


def _known_signal(value: str) -> str:
    if value not in signal.Signals.__members__:
        raise ValueError(f"unknown signal {value!r} (use a name like SIGTERM)")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessAction(_Action):
    """Restart a process the agent can start itself: signal the old one, then run ``start``."""

    kind: Literal["process"] = setting(choice("process"))
    pidfile: str | None = setting(optional(text()), None)
    match: str | None = setting(optional(text(min_length=1)), None)
    stop_signal: str = setting(then(text(), _known_signal), "SIGTERM")
    stop_timeout_s: float = setting(number(gt=0), 10.0)
    start: tuple[str, ...] = setting(strings(min_length=1))
    start_grace_s: float = setting(number(ge=0), 1.0)

    def _check(self) -> None:
        if (self.pidfile is None) == (self.match is None):
            raise ValueError("set exactly one of pidfile or match")
        if self.pidfile is not None and not self.pidfile.startswith("/"):
            raise ValueError("pidfile must be an absolute path")
        if not self.start[0].startswith("/") or "{" in self.start[0]:
            raise ValueError("start[0] must be an absolute path without placeholders")

    def templates(self) -> tuple[str, ...]:
        fixed = tuple(t for t in (self.pidfile, self.match) if t is not None)
        return fixed + self.start[1:]


def _loopback(value: str) -> str:
    scheme, _, rest = value.partition("://")
    authority = rest.split("/", 1)[0]
    if scheme not in ("http", "https") or "{" in authority or "@" in authority:
        raise ValueError("must be http(s):// with a fixed host (no placeholders, no user info)")
    host = _host_of(value)
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"host {host!r} is not loopback (127.0.0.1, localhost or ::1)")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAction(_Action):
    """Call an admin endpoint of a local service; the host part is fixed to loopback."""

    kind: Literal["http"] = setting(choice("http"))
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = setting(
        choice("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"), "POST"
    )
    url: str = setting(then(text(), _loopback))

    def templates(self) -> tuple[str, ...]:
        return (self.url,)


def _host_of(url: str) -> str:
    """The host the agent's HTTP client would connect to, lower-cased (``[::1]`` → ``::1``)."""
    try:
        return split_url(url)[0].host.lower()
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc


ActionConfig = SystemdAction | ScriptAction | ProcessAction | HttpAction
_CLASSES: dict[str, type[ActionConfig]] = {
    "systemd": SystemdAction,
    "script": ScriptAction,
    "process": ProcessAction,
    "http": HttpAction,
}


@dataclass(frozen=True, slots=True)
class ArgvCall:
    """A rendered ``systemd`` or ``script`` action: an argv to run without a shell."""

    action: str
    kind: Literal["systemd", "script"]
    argv: tuple[str, ...]
    timeout_s: float
    output_cap_bytes: int


@dataclass(frozen=True, slots=True)
class ProcessCall:
    """A rendered ``process`` action: stop the running instance, start a new one."""

    action: str
    pidfile: str | None
    match: str | None
    stop_signal: signal.Signals
    stop_timeout_s: float
    start: tuple[str, ...]
    start_grace_s: float
    timeout_s: float
    output_cap_bytes: int


@dataclass(frozen=True, slots=True)
class HttpCall:
    """A rendered ``http`` action: one request to a loopback URL."""

    action: str
    method: str
    url: str
    timeout_s: float
    output_cap_bytes: int


Invocation = ArgvCall | ProcessCall | HttpCall


class Allowlist:
    """The parsed ``actions:`` section; immutable after construction, safe to share across threads."""

    def __init__(self, actions: Sequence[ActionConfig] = ()) -> None:
        self._actions: dict[str, ActionConfig] = {}
        self._patterns: dict[str, dict[str, re.Pattern[str]]] = {}
        for action in actions:
            if action.name in self._actions:
                raise ConfigError(f"actions ({action.name}).name", "duplicate action name")
            self._actions[action.name] = action
            self._patterns[action.name] = {p: re.compile(rx) for p, rx in action.params.items()}

    @classmethod
    def from_config(cls, raw: Sequence[Mapping[str, Any]] | None) -> Allowlist:
        """Validate the ``actions:`` list; a problem names ``actions[i] (name).field``."""
        actions: list[ActionConfig] = []
        seen: set[str] = set()
        for index, item in enumerate(raw or ()):
            action = _parse_action(item, f"actions[{index}]")
            if action.name in seen:
                raise ConfigError(f"actions[{index}] ({action.name}).name", "duplicate action name")
            seen.add(action.name)
            actions.append(action)
        return cls(actions)

    def names(self) -> list[str]:
        return list(self._actions)

    def specs(self) -> list[ActionSpec]:
        """What the agent reports to the server, so the server's own check mirrors this one."""
        from infragent.model import ActionSpec

        return [ActionSpec(**spec) for spec in self.advertised()]

    def advertised(self) -> list[dict[str, Any]]:
        """``specs()`` as the registration's JSON, without loading the shared model (0.2 MiB)."""
        return [
            {"name": a.name, "params": dict(a.params), "description": a.description or _describe(a)}
            for a in self._actions.values()
        ]

    def render(self, action: str, params: Mapping[str, str]) -> Invocation:
        """Turn a command into exactly what will run, or raise ``RejectedError`` saying why."""
        config = self._actions.get(action)
        if config is None:
            raise RejectedError(f"action {action!r} is not in this agent's allowlist")
        patterns = self._patterns[action]
        for param in params:
            if param not in patterns:
                raise RejectedError(f"parameter {param!r} is not declared for action {action!r}")
        for param, pattern in patterns.items():
            value = params.get(param)
            if value is None:
                raise RejectedError(f"parameter {param!r} is required by action {action!r}")
            if len(value) > MAX_PARAM_CHARS or _CONTROL.search(value):
                raise RejectedError(f"parameter {param!r} is too long or contains control characters")
            if pattern.fullmatch(value) is None:
                raise RejectedError(f"parameter {param!r} does not match {pattern.pattern!r}")
        return _invocation(config, params)


def _invocation(config: ActionConfig, values: Mapping[str, str]) -> Invocation:
    timeout_s, cap = config.timeout_s, config.output_cap_bytes
    if isinstance(config, SystemdAction):
        unit = _substitute(config.unit, values)
        # "--" so that even a unit value starting with "-" is never read as an option.
        argv: tuple[str, ...] = ("systemctl", config.op, "--no-ask-password", "--", unit)
        return ArgvCall(config.name, "systemd", argv, timeout_s, cap)
    if isinstance(config, ScriptAction):
        argv = (config.path, *(_substitute(arg, values) for arg in config.args))
        return ArgvCall(config.name, "script", argv, timeout_s, cap)
    if isinstance(config, ProcessAction):
        return ProcessCall(
            action=config.name,
            pidfile=None if config.pidfile is None else _substitute(config.pidfile, values),
            match=None if config.match is None else _substitute(config.match, values),
            stop_signal=signal.Signals[config.stop_signal],
            stop_timeout_s=config.stop_timeout_s,
            start=(config.start[0], *(_substitute(arg, values) for arg in config.start[1:])),
            start_grace_s=config.start_grace_s,
            timeout_s=timeout_s,
            output_cap_bytes=cap,
        )
    url = _substitute(config.url, values, quote=True)
    if _host_of(url) not in LOOPBACK_HOSTS:  # the host is fixed at load; checked again anyway
        raise RejectedError(f"rendered URL {url!r} is not on loopback")
    return HttpCall(config.name, config.method, url, timeout_s, cap)


def _describe(action: ActionConfig) -> str:
    if isinstance(action, SystemdAction):
        return f"systemctl {action.op} {action.unit}"
    if isinstance(action, ScriptAction):
        return " ".join((action.path, *action.args))
    if isinstance(action, ProcessAction):
        return f"restart process {action.pidfile or action.match}"
    return f"{action.method} {action.url}"


def _parse_action(raw: Mapping[str, Any], key: str) -> ActionConfig:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    where = f"{key} ({name})" if isinstance(name, str) and name else key
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "each action must be a mapping")
    kind = raw.get("kind")
    if kind not in ACTION_KINDS:
        raise ConfigError(f"{where}.kind", f"must be one of {', '.join(ACTION_KINDS)}, got {kind!r}")
    return build(_CLASSES[kind], raw, where)
