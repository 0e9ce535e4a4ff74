"""The host agent's settings: a frozen dataclass, checked by hand, from a config file and the environment.

Why not pydantic (as ``infragent.config`` uses for the server): importing pydantic costs the agent
about 4 MB of resident memory, a fifth of the whole budget (node_exporter's 19.7 MiB). The agent has
a dozen scalar settings; explicit checks that name the variable are short and give the same clear
start-up errors. The two parts that need richer validation are imported only when they are used:
``checks:`` go through ``infragent.agent.checks.parse_checks`` and ``actions:`` through the command
allowlist, both dataclasses validated by ``agent/schema.py`` (no pydantic either). The same goes for YAML:
``yaml`` is imported only when a ``.yaml``/``.yml`` file is given; JSON is read with msgspec (the
stdlib's ``json`` would be 0.1 MiB more), TOML with the stdlib.

Sources, strongest first: environment variables, the config file, defaults. Variable names are the
ones operators already use for agents (``NODE_ID``, ``METRICS_INTERVAL`` …) plus ``INFRAGENT_*`` for
what is ours. A bad value raises ``ConfigError`` naming the variable (or ``file: key``).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from infragent.errors import ConfigError

if TYPE_CHECKING:
    from infragent.agent.checks import CheckConfig

MiB = 1024 * 1024
DEFAULT_DATA_DIR_ROOT = Path("/var/lib/infragent-agent")
LogLevel = Literal["debug", "info", "warning", "error"]
CommandMode = Literal["pull", "push"]
_N = TypeVar("_N", int, float)

#: setting name → environment variable. The config file uses the setting names as keys.
ENV_NAMES: dict[str, str] = {
    "server_url": "INFRAGENT_SERVER_URL",
    "api_key": "INFRAGENT_API_KEY",
    "webhook_secret": "INFRAGENT_WEBHOOK_SECRET",
    "node_id": "NODE_ID",
    "customer_id": "CUSTOMER_ID",
    "region": "NODE_REGION",
    "environment": "ENVIRONMENT",
    "health_check_host": "HEALTH_CHECK_HOST",
    "health_check_port": "HEALTH_CHECK_PORT",
    "metrics_interval": "METRICS_INTERVAL",
    "buffer_max_size": "BUFFER_MAX_SIZE",
    "log_level": "LOG_LEVEL",
    "data_dir": "INFRAGENT_AGENT_DATA_DIR",
    "command_mode": "COMMAND_MODE",
    "push_host": "INFRAGENT_PUSH_HOST",
    "push_port": "INFRAGENT_PUSH_PORT",
    "journal": "INFRAGENT_AGENT_JOURNAL",
    "retry_max_delay": "INFRAGENT_AGENT_RETRY_MAX_S",
}
#: Keys only the config file can hold: lists of mappings do not fit in one variable.
FILE_ONLY = ("checks", "actions")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB, "t": 1024 * 1024 * MiB}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``/var/lib/infragent-agent`` for root (the systemd unit), else under the user's data home."""
    if os.geteuid() == 0:
        return DEFAULT_DATA_DIR_ROOT
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "infragent-agent"


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Everything the agent runtime needs; built once in ``main()`` and passed down."""

    node_id: str
    data_dir: Path
    server_url: str = ""
    api_key: str = field(default="", repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    customer_id: str | None = None
    region: str | None = None
    environment: str | None = None
    health_check_host: str = "127.0.0.1"
    health_check_port: int = 8471
    metrics_interval: float = 10.0
    buffer_max_size: int = 100 * MiB
    log_level: LogLevel = "info"
    command_mode: CommandMode = "pull"
    #: Push mode only: where the agent serves ``POST /commands`` for the server's signed commands.
    push_host: str = "0.0.0.0"  # the server must reach it; every command is verified before it runs
    push_port: int = 8472
    journal: bool = False
    #: Cap of the exponential backoff between retries to the server, seconds.
    retry_max_delay: float = 60.0
    #: Validated ``checks:`` entries (see ``load_settings``).
    checks: tuple[CheckConfig, ...] = ()
    #: Raw ``actions:`` entries (the command allowlist); validated by its owner at start-up.
    actions: tuple[Mapping[str, Any], ...] = ()

    @property
    def labels(self) -> dict[str, str]:
        """Labels reported at registration; absent values are left out, not sent empty."""
        pairs = {"region": self.region, "environment": self.environment, "customer": self.customer_id}
        return {key: value for key, value in pairs.items() if value}

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"


def parse_size(text: str) -> int:
    """``"50MB"`` → 52428800. K/M/G/T (with optional B or iB) are powers of 1024, as in systemd."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"expected a size like 100MB, 512KiB or 1048576, got {text!r}")
    number, unit, _ = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true/false or 1/0, got {text!r}")


def _number(text: str, kind: Callable[[str], _N], what: str) -> _N:
    try:
        return kind(text.strip())
    except ValueError:
        raise ValueError(f"expected {what}, got {text!r}") from None


def _interval(text: str) -> float:
    value = _number(text, float, "a number of seconds")
    if not 0.05 <= value <= 86400:
        raise ValueError(f"must be between 0.05 and 86400 seconds, got {text!r}")
    return value


def _retry_cap(text: str) -> float:
    value = _number(text, float, "a number of seconds")
    if not 1.0 <= value <= 3600:
        raise ValueError(f"must be between 1 and 3600 seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _number(text, int, "a TCP port number")
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a TCP port (0-65535), got {text!r}")
    return value


def _buffer(text: str) -> int:
    value = parse_size(text)
    if value < 64 * 1024:
        raise ValueError(f"must be at least 64KiB, got {text!r}")
    return value


def _choice(*allowed: str) -> Any:
    def check(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return value

    return check


def _url(text: str) -> str:
    value = text.strip().rstrip("/")
    if value and not re.fullmatch(r"https?://[^/\s?#@]+(/[^\s?#]*)?", value):
        raise ValueError(f"must be an http:// or https:// URL, got {text!r}")
    return value


def _text(text: str) -> str:
    return text.strip()


_PARSERS: dict[str, Any] = {
    "server_url": _url,
    "metrics_interval": _interval,
    "health_check_port": _port,
    "push_port": _port,
    "buffer_max_size": _buffer,
    "log_level": _choice("debug", "info", "warning", "error"),
    "command_mode": _choice("pull", "push"),
    "journal": _bool,
    "retry_max_delay": _retry_cap,
    "data_dir": lambda text: Path(text).expanduser(),
}


def read_config_file(path: Path) -> dict[str, Any]:
    """A mapping from a JSON, TOML or YAML file; YAML support is imported only for YAML files."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from exc
    suffix = path.suffix.lower()
    data: Any
    if suffix == ".json":
        import msgspec

        try:
            data = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise ConfigError(str(path), f"not valid JSON: {exc}") from exc
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    elif suffix in (".yaml", ".yml"):
        import yaml  # ~1 MB resident: only agents configured in YAML pay for it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), f"not valid YAML: {exc}") from exc
    else:
        raise ConfigError(str(path), "config file must end in .json, .toml, .yaml or .yml")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "top level must be a mapping of setting names to values")
    return data


def _file_values(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    raw = read_config_file(path)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in raw.items():
        if key not in ENV_NAMES and key not in FILE_ONLY:
            raise ConfigError(f"{path}: {key}", "unknown setting (see docs/agent.md)")
        if key in FILE_ONLY:
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                raise ConfigError(f"{path}: {key}", "must be a list of mappings")
            values[key] = tuple(value)
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[key] = str(value)
        elif value is not None:
            raise ConfigError(f"{path}: {key}", f"must be a scalar, got {type(value).__name__}")
        origin[key] = f"{path}: {key}"
    return values, origin


def load_settings(
    environ: Mapping[str, str], config_file: Path | None = None, *, require_server: bool = True
) -> AgentSettings:
    """Build ``AgentSettings`` from the file (if any) and ``environ``; ``ConfigError`` names what is wrong.

    ``require_server`` is False for ``--once``, which prints one collection and needs no server.
    """
    values, origin = _file_values(config_file) if config_file is not None else ({}, {})
    for name, env_name in ENV_NAMES.items():
        if env_name in environ:
            values[name] = environ[env_name]
            origin[name] = env_name
    parsed: dict[str, Any] = {}
    for name, value in values.items():
        if name in FILE_ONLY:
            parsed[name] = value
            continue
        parser = _PARSERS.get(name, _text)
        try:
            parsed[name] = parser(value)
        except ValueError as exc:
            raise ConfigError(origin[name], str(exc)) from exc
        if parsed[name] == "" and name not in ("server_url", "api_key"):
            parsed[name] = None  # an empty optional label means "not set"
    for name in ("node_id", "data_dir", "health_check_host", "push_host", "log_level", "command_mode"):
        if parsed.get(name, "unset") is None:
            del parsed[name]  # empty → default
    parsed.setdefault("node_id", socket.gethostname())
    parsed.setdefault("data_dir", default_data_dir(environ))
    if len(parsed["node_id"]) > 255:
        raise ConfigError(origin.get("node_id", "NODE_ID"), "must be at most 255 characters")
    if require_server:
        if not parsed.get("server_url"):
            raise ConfigError(origin.get("server_url", "INFRAGENT_SERVER_URL"), "is required")
        if not parsed.get("api_key"):
            raise ConfigError(origin.get("api_key", "INFRAGENT_API_KEY"), "is required")
    if parsed.get("checks"):
        from infragent.agent.checks import parse_checks  # only when checks are configured

        parsed["checks"] = tuple(parse_checks(parsed["checks"]))  # ConfigError names checks[i] (name).field
    return AgentSettings(**parsed)
