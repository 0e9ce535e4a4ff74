"""``rule_files``: a server started with rule files gives every tenant their rules (origin "file"),
next to the default pack, and a restart with the file changed re-syncs them without touching rules
made through the API."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from support.servers import serve

FILE_V1 = """
groups:
  - name: app
    rules:
      - alert: QueueDeep
        kind: threshold
        metric: app.queue.depth
        function: last
        window: 1m
        op: ">"
        value: 100
      - alert: QueueStuck
        kind: absence
        metric: app.queue.depth
        silent: 5m
"""

FILE_V2 = FILE_V1.replace("value: 100", "value: 500").split("      - alert: QueueStuck")[0]


def _origins(http: httpx.Client, auth: dict[str, str]) -> dict[str, tuple[str, dict[str, object]]]:
    r = http.get("/api/v1/rules", headers=auth)
    assert r.status_code == 200, r.text
    return {rule["name"]: (rule["origin"], rule) for rule in r.json()}


def test_rule_files_are_loaded_into_every_tenant_at_start(store: SqlStore, tmp_path: Path) -> None:
    path = tmp_path / "app-rules.yaml"
    path.write_text(FILE_V1)
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",), rule_tick_s=0.1, rule_files=(path,))

    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        r = http.post(
            "/api/v1/clients/register",
            json={
                "email": f"{uuid.uuid4().hex[:8]}@example.com",
                "company_name": "A",
                "webhook_url": "http://127.0.0.1:9/h",
            },
        )
        assert r.status_code == 201, r.text
        auth = {"Authorization": f"Bearer {r.json()['api_key']}"}
        mine = {
            "alert": "Mine",
            "kind": "threshold",
            "metric": "x",
            "function": "last",
            "window": "1m",
            "op": ">",
            "value": 1,
        }
        assert http.post("/api/v1/rules", json=mine, headers=auth).status_code == 201

    # a tenant registered after start gets the file rules at the next start
    path.write_text(FILE_V2)
    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        deadline = time.monotonic() + 10
        while True:
            rules = _origins(http, auth)
            if "QueueDeep" in rules or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert rules["QueueDeep"][0] == "file"
        assert "QueueStuck" not in rules  # removed from the file: removed from the tenant
        assert rules["Mine"][0] == "api"  # API rules are never touched by the sync
        assert rules["HighCpu"][0] == "default"  # the pack is there too
        detail = http.get("/api/v1/rules/QueueDeep", headers=auth).json()
        assert "500" in str(detail), detail
