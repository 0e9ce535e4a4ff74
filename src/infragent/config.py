"""Settings: the only place that reads ``os.environ``.

Why one object built once in ``main()``: every part gets its configuration passed in, so tests build
a ``Settings`` directly and nothing depends on import-time state. Sources, strongest first:
keyword arguments, ``INFRAGENT_*`` environment variables, the config file (YAML or TOML, given by
``--config`` or ``INFRAGENT_CONFIG``), defaults. An unknown key or a bad value stops start-up with a
message naming it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from infragent.errors import ConfigError

ENV_PREFIX = "INFRAGENT_"
#: Variables read by tools around us, not settings of this object.
_ENV_NOT_SETTINGS = {
    "INFRAGENT_CONFIG",
    "INFRAGENT_TEST_PG_DSN",
    "INFRAGENT_RELIABILITY_OUTAGE_S",
    # test-only crash points of the delivery worker (notify/failpoints.py)
    "INFRAGENT_FAILPOINTS",
    # the host agent's own variables (docs/agent.md), often set in the same environment
    "INFRAGENT_SERVER_URL",
    "INFRAGENT_API_KEY",
    "INFRAGENT_WEBHOOK_SECRET",
    "INFRAGENT_AGENT_DATA_DIR",
    "INFRAGENT_AGENT_JOURNAL",
    "INFRAGENT_AGENT_RETRY_MAX_S",
}
#: Never echoed back in an error message.
_SECRET_SETTINGS = {"llm_api_key", "remote_write_headers", "database_url"}


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "infragent"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    public_url: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    #: Cap on a metric body after ``Content-Encoding`` is undone (413 past it): bounds the memory
    #: one ingest request may take, an absolute figure rather than a multiple of ``max_body_bytes``.
    #: OTLP keeps the lower limit its specification recommends (20 MiB) when this one is higher.
    max_decompressed_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    #: New series beyond this per tenant are refused with 429 (server/ingest/admission.py says why).
    max_series_per_tenant: int = Field(default=100_000, gt=0)
    #: Worker processes for native metric ingest on PostgreSQL (0: in the server process); see
    #: server/ingest/pool.py and docs/scaling.md.
    ingest_processes: int = Field(default=0, ge=0, le=64)

    #: Client registrations one IP address may make per ``registration_rate_window_s`` (429 past
    #: it, with ``Retry-After``); 0 turns the limit off. Per server process (server/ratelimit.py).
    registration_rate_limit: int = Field(default=10, ge=0)
    registration_rate_window_s: float = Field(default=3600.0, gt=0)
    #: Who may register a new tenant (``POST /api/v1/clients``): ``open`` anyone, ``closed`` nobody,
    #: ``admin-only`` an admin (session or admin key); ``auto`` is open until the first user exists,
    #: then closed (docs/security.md "Registration").
    registration_mode: Literal["auto", "open", "closed", "admin-only"] = "auto"

    # -- users, sessions, rate limits, the live stream (docs/security.md, docs/dashboard.md)
    #: a sign-in lasts this long (the cookie and the session row expire together)
    session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    #: the cookie's ``Secure`` flag: ``auto`` sets it when the request came over https
    session_cookie_secure: Literal["auto", "always", "never"] = "auto"
    #: failed sign-ins per client IP per ``login_rate_window_s`` before 429
    login_rate_limit: int = Field(default=10, ge=0)
    login_rate_window_s: float = Field(default=300.0, gt=0)
    #: requests per API key per ``api_rate_window_s`` (429 with ``Retry-After`` past it); 0: off
    api_rate_limit_per_key: int = Field(default=6000, ge=0)
    #: requests per client IP per ``api_rate_window_s`` on the unauthenticated endpoints; 0: off
    api_rate_limit_per_ip: int = Field(default=600, ge=0)
    api_rate_window_s: float = Field(default=60.0, gt=0)
    #: where rate-limit counters live: ``memory://`` (per process) or ``redis://host:port/db`` (shared)
    rate_limit_storage: str = "memory://"
    #: a rotated key keeps working this long, so hosts can be moved to the new one
    key_rotation_grace_s: float = Field(default=24 * 3600.0, ge=0)
    #: live-stream (SSE) connections one user or key may hold at once (429 past it)
    stream_max_connections: int = Field(default=8, ge=1)
    #: a comment line this often keeps proxies from closing a quiet stream
    stream_heartbeat_s: float = Field(default=15.0, gt=0)
    #: messages queued for one slow client before it is dropped (it reconnects and catches up)
    stream_queue_max: int = Field(default=500, ge=1)
    #: origins allowed to call the API from a browser (CORS); empty: closed
    cors_allow_origins: tuple[str, ...] = ()

    # metric store upkeep in the server (server/maintenance.py); an interval of 0 turns the job off
    metrics_compact_interval_s: float = Field(default=60.0, ge=0)
    #: An hour is compacted once it ended this long ago (late batches still arrive raw before that).
    metrics_compact_delay_s: float = Field(default=600.0, ge=0)
    metrics_retention_interval_s: float = Field(default=3600.0, ge=0)

    # responder
    sweep_interval_s: float = Field(default=30.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=300.0, ge=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_retries: int = Field(default=3, ge=0, le=10)
    #: CIDRs a tenant's webhook may reach besides public addresses (loopback and private ranges are
    #: refused otherwise; link-local and cloud metadata always): see ``infragent/outbound/policy.py``.
    webhook_allowed_networks: tuple[str, ...] = ()
    runbooks_path: Path | None = None
    command_ttl_s: float = Field(default=300.0, gt=0)
    # -- runbooks as steps (docs/runbooks.md, docs/responder.md "Guardrails")
    #: stops every automatic action at once, whatever the database says (the API's switch adds to it)
    responder_kill_switch: bool = False
    #: how long a responder holds a runbook run before another may take it over (after a crash)
    run_lease_s: float = Field(default=30.0, gt=0)
    #: how often running runbooks are looked at without news (results, approvals, recoveries)
    run_poll_s: float = Field(default=0.5, gt=0)
    #: the budget's defaults: at most this many automatic actions per host and action per window
    budget_max_actions: int = Field(default=3, ge=0)
    budget_window_s: float = Field(default=1800.0, gt=0)
    #: the circuit breaker: this share of a tenant's hosts unhealthy at once stops automatic actions
    breaker_share: float = Field(default=0.4, gt=0, lt=1)
    breaker_min_hosts: int = Field(default=3, ge=1)
    #: scheduled runbooks: claimed by the server processes (one each due run), looked at every tick
    schedules_enabled: bool = True
    schedule_tick_s: float = Field(default=1.0, gt=0)

    # scale-out: forward accepted samples to a Prometheus remote-write endpoint (e.g. VictoriaMetrics)
    remote_write_url: str = ""
    remote_write_headers: dict[str, str] = Field(default_factory=dict, repr=False)

    # -- rules and incidents (docs/rules.md, docs/incidents.md)
    #: evaluate alert rules in this server (streaming at ingest, timers on a tick)
    rules_enabled: bool = True
    #: rule files (Prometheus-like groups, docs/rules.md) loaded into every tenant at start
    rule_files: tuple[Path, ...] = ()
    #: the tick for ``for``/``keep_firing_for`` timers and absence rules
    rule_tick_s: float = Field(default=1.0, gt=0)
    #: how long a server holds a tenant's evaluation lease before it must renew it
    rule_lease_s: float = Field(default=15.0, gt=0)
    #: alert instances (rule by group) per tenant at most; a rule that would pass it is refused
    max_alert_instances_per_tenant: int = Field(default=10_000, gt=0)
    #: incidents (IncidentPolicy): reopen, flapping, grouping window, auto-pause
    incident_reopen_window_s: float = Field(default=1800.0, ge=0)
    incident_flap_threshold: int = Field(default=3, ge=1)
    incident_flap_window_s: float = Field(default=3600.0, gt=0)
    incident_group_window_s: float = Field(default=0.0, ge=0)
    incident_auto_pause_s: float = Field(default=0.0, ge=0)

    # -- notifications (docs/notifications.md)
    #: run the notification pipeline and delivery worker in this server
    notify_enabled: bool = True
    #: how often the pipeline looks for work another process wrote (this process wakes it at once)
    notify_tick_s: float = Field(default=0.2, gt=0)
    #: deliveries sent at once by one server process
    notify_workers: int = Field(default=4, ge=1, le=64)
    #: changes, groups or deliveries claimed per round
    notify_batch: int = Field(default=50, ge=1, le=1000)
    #: a claimed delivery is another process's to take after this long (a crash mid-send)
    notify_lease_s: float = Field(default=60.0, gt=0)
    #: retryable failures (429, 5xx, transport) are retried this long, then dead-lettered
    notify_retry_for_s: float = Field(default=3600.0, ge=0)
    notify_backoff_base_s: float = Field(default=1.0, gt=0)
    notify_backoff_cap_s: float = Field(default=30.0, gt=0)
    #: one HTTP request (or SMTP conversation) of a channel
    notify_timeout_s: float = Field(default=10.0, gt=0)
    #: the root route's timings (Alertmanager's defaults); routes override them
    notify_group_wait_s: float = Field(default=30.0, ge=0)
    notify_group_interval_s: float = Field(default=300.0, gt=0)
    notify_repeat_interval_s: float = Field(default=4 * 3600.0, gt=0)

    # LLM (optional)
    llm_provider: Literal["none", "gemini", "openai"] = "none"
    llm_base_url: str | None = None
    llm_model: str = ""
    llm_api_key: str | None = None
    llm_timeout_s: float = Field(default=20.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @field_validator("remote_write_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        """A list (file) or a comma-separated string or JSON array (environment) of CIDRs, normalised."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of networks in CIDR notation")
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(str(item).strip(), strict=True)))
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a network in CIDR notation ({exc})") from exc
        return tuple(networks)

    @field_validator("rule_files", mode="before")
    @classmethod
    def _rule_files(cls, value: Any) -> Any:
        """A list (file) or a JSON array or one path (environment): a tuple of paths is never a string."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else ([text] if text else [])
        if not isinstance(value, list | tuple) or not all(isinstance(v, str | Path) for v in value):
            raise ValueError("must be a list of rule file paths (a JSON array in the environment)")
        return tuple(Path(v) for v in value)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        """A list (file) or a comma-separated string or JSON array (environment) of origins."""
        if isinstance(value, str):
            text = value.strip()
            parts = [p.strip() for p in text.split(",") if p.strip()]
            value = json.loads(text) if text.startswith("[") else parts
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of origins such as https://ops.example.com")
        for origin in value:
            if not str(origin).startswith(("http://", "https://")) or str(origin).endswith("/"):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        return tuple(str(o) for o in value)

    @field_validator("max_decompressed_bytes")
    @classmethod
    def _decompressed_covers_raw(cls, value: int, info: ValidationInfo) -> int:
        """A body sent without compression must be able to pass both caps."""
        raw = info.data.get("max_body_bytes")
        if raw is not None and value < raw:
            raise ValueError(f"must be at least max_body_bytes ({raw})")
        return value

    @property
    def resolved_database_url(self) -> str:
        """SQLite in the data dir unless a URL is given."""
        return self.database_url or f"sqlite:///{self.data_dir / 'infragent.db'}"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            str(path), f"not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "top level must be a mapping of setting names to values")
    return data


def load_settings(
    config_file: Path | None = None, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build Settings from file + environment + overrides; raise ConfigError naming what is wrong."""
    env = dict(os.environ if environ is None else environ)
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for name in env:
        if name.startswith(ENV_PREFIX) and name not in known and name not in _ENV_NOT_SETTINGS:
            raise ConfigError(name, "unknown setting (see docs/configuration.md)")
    path = config_file or (Path(env["INFRAGENT_CONFIG"]) if env.get("INFRAGENT_CONFIG") else None)
    values: dict[str, Any] = _read_file(path) if path else {}
    origin = {name: f"{path}: {name}" for name in values}
    for name, info in Settings.model_fields.items():
        var = ENV_PREFIX + name.upper()
        if var in env:
            values[name] = env[var]
            origin[name] = var
            if info.annotation is not None and "dict" in str(info.annotation):
                try:  # mappings come from the environment as JSON objects
                    values[name] = json.loads(env[var])
                except json.JSONDecodeError as exc:
                    raise ConfigError(var, f"must be a JSON object: {exc.msg}") from exc
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        key = origin.get(field, field)
        if err["type"] == "extra_forbidden":
            raise ConfigError(key, "unknown setting (see docs/configuration.md)") from exc
        shown = "" if field in _SECRET_SETTINGS else f" (got {err.get('input')!r})"
        raise ConfigError(key, f"{err['msg']}{shown}") from exc
