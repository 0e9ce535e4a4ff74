"""``infragent up`` starts an agent for this machine, so a new user sees their own host at once.

Why a separate process: the agent is meant to be lean (it has its own footprint budget) and to keep
running its own way; ``up`` owns it as a child and stops it on exit. Its credentials are a local
client created once and kept in the data dir (mode 0600), so restarts reuse the same tenant.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from infragent.auth.registration import register_client
from infragent.config import Settings
from infragent.store import tenants
from infragent.store.base import Database

CREDENTIALS_FILE = "local-agent.json"


def local_credentials(settings: Settings, store: Database, now: float) -> dict[str, str]:
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        with store.read() as conn:
            known = tenants.get_client(conn, data.get("client_id", "")) is not None
        if known:
            return {k: str(v) for k, v in data.items()}
    reg = register_client(store, "agent@localhost", "This machine", f"{settings.base_url}/unused", now)
    data = {"client_id": reg.client.id, "api_key": reg.api_key, "webhook_secret": reg.client.webhook_secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return data


def start_local_agent(
    settings: Settings, credentials: dict[str, str], health_port: int = 8471
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env.update(
        {
            "INFRAGENT_SERVER_URL": settings.base_url,
            "INFRAGENT_API_KEY": credentials["api_key"],
            "INFRAGENT_WEBHOOK_SECRET": credentials["webhook_secret"],
            "INFRAGENT_AGENT_DATA_DIR": str(Path(settings.data_dir) / "agent"),
            "NODE_ID": env.get("NODE_ID", socket.gethostname()),
            "HEALTH_CHECK_PORT": str(health_port),
            "LOG_LEVEL": env.get("LOG_LEVEL", "warning"),
        }
    )
    return subprocess.Popen([sys.executable, "-m", "infragent.agent", "run"], env=env)


def stop_local_agent(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
