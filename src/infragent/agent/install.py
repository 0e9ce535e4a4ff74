"""Installing the agent as a systemd service: an environment file (mode 0600) and a unit.

Why an environment file rather than a config file: the agent reads the same variable names from
the environment everywhere (container, shell, systemd), so the unit only has to point
``EnvironmentFile=`` at it; the API key stays out of the unit, which any user may read.

Why the key is checked with the server first (``agent_key``): an admin key on every host would
let anyone with root on one host manage the whole tenant. Given the admin key shown at
registration, the installer mints an ``ingest``-only key for this host (``POST /api/v1/keys``)
and writes that one; given a key that is not an admin key (the server answers that call with 403),
it writes the key as given. No admin key is ever written to the host (docs/agent.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from infragent.agent.http import HttpClient, HttpError, json_headers
from infragent.auth import apikeys
from infragent.errors import ConfigError

UNIT_NAME = "infragent-agent.service"
SYSTEMD_RUN_DIR = Path("/run/systemd/system")


@dataclass(frozen=True, slots=True)
class InstallPlan:
    server_url: str
    api_key: str
    node_id: str | None = None
    webhook_secret: str | None = None
    command_mode: str = "pull"
    extra_env: dict[str, str] = field(default_factory=dict)
    config_dir: Path = Path("/etc/infragent")
    unit_dir: Path = Path("/etc/systemd/system")
    python: str = sys.executable
    memory_max: str = "64M"
    cpu_quota: str = "10%"

    @property
    def env_path(self) -> Path:
        return self.config_dir / "agent.env"

    @property
    def unit_path(self) -> Path:
        return self.unit_dir / UNIT_NAME


def validate(plan: InstallPlan) -> None:
    if not plan.server_url.startswith(("http://", "https://")):
        raise ConfigError("--server", f"must be an http:// or https:// URL (got {plan.server_url!r})")
    if apikeys.parse(plan.api_key) is None:
        raise ConfigError(
            "--key", "not an InfrAgent API key (ia_<key_id>_<secret>, as shown at registration)"
        )
    if plan.command_mode not in ("pull", "push"):
        raise ConfigError("--mode", "must be pull or push")
    if plan.webhook_secret is not None and not plan.webhook_secret.startswith("whsec_"):
        raise ConfigError("--webhook-secret", "must start with whsec_ (as shown at registration)")
    for key, value in plan.extra_env.items():
        if "\n" in value or "\n" in key:
            raise ConfigError(key, "environment values cannot contain newlines")


@dataclass(frozen=True, slots=True)
class AgentKey:
    """The key to write to the host, and what was done to get it (printed by the CLI)."""

    api_key: str
    note: str


def agent_key(plan: InstallPlan, *, timeout_s: float = 10.0) -> AgentKey:
    """The key this host's agent gets: a new ``ingest``-only key when ``plan.api_key`` is an admin key,
    else ``plan.api_key`` itself. Raises ``ConfigError`` when the server refuses the key or cannot
    be reached (nothing is installed then: whether the key is an admin key is unknown)."""
    name = f"agent {plan.node_id or socket.gethostname()}"
    body = msgspec.json.encode({"scopes": ["ingest"], "name": name})
    try:
        with HttpClient(plan.server_url, timeout_s=timeout_s) as http:
            r = http.request("POST", "/api/v1/keys", body, json_headers(plan.api_key))
    except HttpError as exc:
        raise ConfigError("--server", f"cannot reach the server to check the key: {exc}") from exc
    if r.status == 201:
        minted = msgspec.json.decode(r.body)
        return AgentKey(
            str(minted["api_key"]),
            f"minted ingest-only key {minted['key_id']} for this host (the admin key is not written)",
        )
    if r.status == 403:
        return AgentKey(plan.api_key, "the key is not an admin key: written as given")
    if r.status == 401:
        raise ConfigError("--key", f"the server refuses this key: {r.text(200)}")
    raise ConfigError("--server", f"unexpected answer {r.status} from {plan.server_url}: {r.text(200)}")


def render_env(plan: InstallPlan) -> str:
    lines = [
        "# InfrAgent agent settings, read by infragent-agent.service. Keep it 0600: it holds the API key.",
        f"INFRAGENT_SERVER_URL={plan.server_url}",
        f"INFRAGENT_API_KEY={plan.api_key}",
        f"COMMAND_MODE={plan.command_mode}",
    ]
    if plan.node_id:
        lines.append(f"NODE_ID={plan.node_id}")
    if plan.webhook_secret:
        lines.append(f"INFRAGENT_WEBHOOK_SECRET={plan.webhook_secret}")
    lines += [f"{k}={v}" for k, v in sorted(plan.extra_env.items())]
    return "\n".join(lines) + "\n"


def render_unit(plan: InstallPlan) -> str:
    return f"""[Unit]
Description=InfrAgent host agent (metrics, health checks, allowlisted actions)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile={plan.env_path}
Environment=INFRAGENT_AGENT_DATA_DIR=/var/lib/infragent-agent
ExecStart={plan.python} -m infragent.agent run
Restart=always
RestartSec=5
StateDirectory=infragent-agent
StateDirectoryMode=0700
MemoryMax={plan.memory_max}
CPUQuota={plan.cpu_quota}
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""


def systemd_running(run_dir: Path = SYSTEMD_RUN_DIR) -> bool:
    return run_dir.is_dir() and shutil.which("systemctl") is not None


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)  # the umask may have narrowed it
    os.replace(tmp, path)


def _systemctl(*args: str) -> None:
    subprocess.run(["systemctl", *args], check=True)  # noqa: S603, S607 - fixed arguments, system tool


def install(plan: InstallPlan, *, start: bool = True, run_dir: Path = SYSTEMD_RUN_DIR) -> list[str]:
    """Write the files and, where systemd runs, enable and start the unit; return what was done."""
    validate(plan)
    _write(plan.env_path, render_env(plan), 0o600)
    _write(plan.unit_path, render_unit(plan), 0o644)
    done = [f"wrote {plan.env_path} (0600)", f"wrote {plan.unit_path}"]
    if not systemd_running(run_dir):
        done.append(
            f"systemd is not running here: start the agent with `set -a; . {plan.env_path}; "
            f"{plan.python} -m infragent.agent run`"
        )
        return done
    _systemctl("daemon-reload")
    done.append("systemctl daemon-reload")
    if start:
        _systemctl("enable", "--now", UNIT_NAME)
        done.append(f"systemctl enable --now {UNIT_NAME}")
    return done


def uninstall(
    config_dir: Path, unit_dir: Path, *, purge_data: Path | None = None, run_dir: Path = SYSTEMD_RUN_DIR
) -> list[str]:
    done = []
    unit = unit_dir / UNIT_NAME
    if systemd_running(run_dir) and unit.exists():
        _systemctl("disable", "--now", UNIT_NAME)
        done.append(f"systemctl disable --now {UNIT_NAME}")
    for path in (unit, config_dir / "agent.env"):
        if path.exists():
            path.unlink()
            done.append(f"removed {path}")
    if systemd_running(run_dir) and done:
        _systemctl("daemon-reload")
    if purge_data is not None and purge_data.exists():
        shutil.rmtree(purge_data)
        done.append(f"removed {purge_data}")
    return done or ["nothing to remove"]
