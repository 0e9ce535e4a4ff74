"""``/api/v1/schedules`` against the real app on both databases: create (with every refusal naming
its field), list with the next run and the last run, switch on/off, delete, scopes, tenant isolation,
the scheduler's tick starting a run, and the OpenAPI document."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.server.services import AppServices
from infragent.store import audit
from infragent.store.sql import SqlStore
from support.web import Site, register_tenant, serve_site

RUNBOOKS = """\
runbooks:
  - name: nightly-check
    steps:
      - id: tell
        notify: "scheduled check of {node_id}"
  - name: weekly-cleanup
    steps:
      - escalate: "clean up {node_id}"
"""
BODY: dict[str, Any] = {"name": "every-5m", "runbook": "nightly-check", "every": "5m", "node_id": "host-1"}


@dataclass
class Api:
    site: Site
    client_id: str
    admin: dict[str, str]
    reader: dict[str, str]

    @property
    def http(self) -> httpx.Client:
        return self.site.http

    def create(self, **kw: Any) -> httpx.Response:
        return self.http.post("/api/v1/schedules", json=BODY | kw, headers=self.admin)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api(store: SqlStore, tmp_path: Path) -> Iterator[Api]:
    path = tmp_path / "runbooks.yaml"
    path.write_text(RUNBOOKS)
    settings = Settings(runbooks_path=path, schedule_tick_s=60, webhook_allowed_networks=("127.0.0.0/8",))
    with serve_site(store, settings) as site:
        client_id, admin, reader = register_tenant(site.http, "ops@example.com", "read")
        yield Api(site, client_id, _auth(admin), _auth(reader))


def test_create_list_and_show_the_next_run(api: Api) -> None:
    before = time.time()
    r = api.create()
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["spec"] == {"every_s": 300.0, "start": 0.0} and created["enabled"]
    assert before < created["next_run_at"] <= time.time() + 300
    assert created["next_run"].endswith("+00:00") and created["described"].startswith("every 300 s")
    assert created["last_run"] is None and created["missed"] == "skip"
    listed = api.http.get("/api/v1/schedules", headers=api.reader).json()["schedules"]
    assert [s["name"] for s in listed] == ["every-5m"]
    by_name = api.http.get("/api/v1/schedules/every-5m", headers=api.reader).json()
    assert by_name == api.http.get(f"/api/v1/schedules/{created['id']}", headers=api.reader).json()
    cron = api.create(name="nightly", every=None, cron="30 2 * * 1-5", timezone="Europe/Berlin")
    assert cron.status_code == 201, cron.text
    assert "Europe/Berlin" in cron.json()["described"]


@pytest.mark.parametrize(
    ("kw", "status", "field", "words"),
    [
        ({"runbook": "nope"}, 422, "runbook", "known runbooks are nightly-check, weekly-cleanup"),
        ({"every": None, "cron": "0 25 * * *"}, 422, "cron", "column 3"),
        ({"every": None, "cron": "0 0 * * *", "timezone": "Mars/Base"}, 422, "timezone", "unknown time zone"),
        ({"every": "30s"}, 422, "every", "at least 60"),
        ({"every": None, "at": "2020-01-01T00:00:00Z"}, 422, "spec", "no run after now"),
        ({"cron": "* * * * *"}, 422, "spec", "exactly one of cron, every or at"),
    ],
)
def test_refusals_name_the_field(api: Api, kw: dict[str, Any], status: int, field: str, words: str) -> None:
    r = api.create(**kw)
    assert r.status_code == status, r.text
    [problem] = r.json()["problems"]
    assert problem["field"] == field and words in problem["message"], r.json()
    assert words in r.json()["detail"]


def test_a_bad_body_and_a_taken_name(api: Api) -> None:
    assert api.create(missed="catch_up").status_code == 422
    assert api.create(colour="red").status_code == 422
    assert api.create().status_code == 201
    taken = api.create()
    assert taken.status_code == 409 and taken.json()["problems"][0]["field"] == "name"


def test_switch_off_and_on_and_delete(api: Api) -> None:
    sid = api.create().json()["id"]
    off = api.http.patch(f"/api/v1/schedules/{sid}", json={"enabled": False}, headers=api.admin)
    assert off.status_code == 200 and off.json()["next_run_at"] is None and not off.json()["enabled"]
    on = api.http.patch("/api/v1/schedules/every-5m", json={"enabled": True}, headers=api.admin)
    assert on.status_code == 200 and on.json()["next_run_at"] is not None
    assert api.http.delete(f"/api/v1/schedules/{sid}", headers=api.admin).status_code == 204
    gone = api.http.delete(f"/api/v1/schedules/{sid}", headers=api.admin)
    assert gone.status_code == 404 and "no schedule" in gone.json()["detail"]
    assert (
        api.http.patch(f"/api/v1/schedules/{sid}", json={"enabled": True}, headers=api.admin).status_code
        == 404
    )
    with api.site.store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, api.client_id, [sid])]
    assert kinds == ["schedule.create", "schedule.disable", "schedule.enable", "schedule.delete"]


def test_a_read_key_cannot_change_schedules(api: Api) -> None:
    r = api.http.post("/api/v1/schedules", json=BODY, headers=api.reader)
    assert r.status_code == 403 and r.json()["required_scope"] == "admin"
    sid = api.create().json()["id"]
    assert api.http.delete(f"/api/v1/schedules/{sid}", headers=api.reader).status_code == 403
    assert api.http.get("/api/v1/schedules").status_code == 401


def test_another_tenants_schedule_is_a_404(api: Api) -> None:
    sid = api.create().json()["id"]
    _, other = register_tenant(api.http, "other@example.com")
    assert api.http.get(f"/api/v1/schedules/{sid}", headers=_auth(other)).status_code == 404
    assert api.http.get("/api/v1/schedules", headers=_auth(other)).json() == {"schedules": []}
    assert api.http.delete(f"/api/v1/schedules/{sid}", headers=_auth(other)).status_code == 404


def test_the_schedulers_tick_starts_the_run_and_the_list_shows_it(api: Api) -> None:
    created = api.create().json()
    svc: AppServices = api.site.svc
    assert svc.scheduler is not None and svc.scheduler.runbook_names() == ["nightly-check", "weekly-cleanup"]
    [run] = svc.scheduler.run_once(created["next_run_at"] + 1)
    assert run.run_id is not None and run.error is None
    shown = api.http.get(f"/api/v1/schedules/{created['id']}", headers=api.reader).json()
    assert shown["last_run"]["run_id"] == run.run_id
    assert shown["last_run"]["due_at"] == created["next_run_at"]
    assert shown["last_run"]["claimed_by"] == svc.scheduler.worker_id
    assert shown["next_run_at"] == created["next_run_at"] + 300


def test_openapi_shows_the_schedules_routes(api: Api) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/schedules"]) == {"get", "post"}
    assert set(paths["/api/v1/schedules/{ident}"]) == {"get", "patch", "delete"}
