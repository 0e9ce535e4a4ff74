"""``infragent up`` starts an agent for this machine, so a new user sees their own host at once.

Why a separate process: the agent is meant to be lean (it has its own footprint budget) and to keep
running its own way; ``up`` owns it as a child and stops it on exit. Its credentials are a local
client created once and kept in the data dir (mode 0600), so restarts reuse the same tenant; the
agent gets an ``ingest``-only key of it, never the tenant's admin key.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from infragent.auth import scopes
from infragent.auth.registration import mint_key, register_client
from infragent.config import Settings
from infragent.store import tenants
from infragent.store.base import Database

CREDENTIALS_FILE = "local-agent.json"
LOCAL_EMAIL = "agent@localhost"
ACTOR = "cli:up"


def local_credentials(settings: Settings, store: Database, now: float) -> dict[str, str]:
    """The local tenant's credentials, kept in ``local-agent.json`` (0600) in the data dir.

    ``api_key`` is the tenant's admin key, for the person running ``up`` (it stays in the server's
    own data dir, beside the database); ``agent_api_key`` is an ``ingest``-only key, the only one
    the agent process is given. A file from before keys had scopes gains its agent key here; a
    lost file gets fresh keys for the same tenant (its e-mail already owns it).
    """
    path = settings.data_dir / CREDENTIALS_FILE
    data: dict[str, str] = {}
    if path.exists():
        data = {k: str(v) for k, v in json.loads(path.read_text()).items()}
        with store.read() as conn:
            if tenants.get_client(conn, data.get("client_id", "")) is None:
                data = {}
    if data.get("agent_api_key"):
        return data
    if not data:
        data = _owner_credentials(settings, store, now)
    agent_key = mint_key(store, data["client_id"], scopes.AGENT_SCOPES, now, actor=ACTOR, name="local agent")
    data["agent_api_key"] = agent_key.plaintext
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return data


def _owner_credentials(settings: Settings, store: Database, now: float) -> dict[str, str]:
    """Register the local tenant, or, when it exists but its file was lost, mint it a new admin key."""
    with store.write() as conn:
        client = tenants.client_by_email(conn, LOCAL_EMAIL)
    if client is None:
        reg = register_client(store, LOCAL_EMAIL, "This machine", f"{settings.base_url}/unused", now)
        client, api_key = reg.client, reg.api_key
    else:
        owner = mint_key(store, client.id, scopes.REGISTRATION_SCOPES, now, actor=ACTOR, name="local owner")
        api_key = owner.plaintext
    return {"client_id": client.id, "api_key": api_key, "webhook_secret": client.webhook_secret}


def start_local_agent(
    settings: Settings, credentials: dict[str, str], health_port: int = 8471
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env.update(
        {
            "INFRAGENT_SERVER_URL": settings.base_url,
            "INFRAGENT_API_KEY": credentials["agent_api_key"],  # ingest only
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
