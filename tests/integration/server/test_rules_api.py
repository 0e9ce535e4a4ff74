"""``/api/v1/rules`` against the real app on both databases: the pack a new tenant gets, create /
replace / switch / delete, JSON and YAML bodies, problems with line and column, the instance cap,
tenant isolation, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.rules.pack import default_pack
from infragent.server.app import create_app
from infragent.store import audit
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

CAP = 12
PACK = sorted(r.name for g in default_pack() for r in g.rules)
RULE = {
    "alert": "BusyBox",
    "kind": "threshold",
    "metric": 'system.cpu.utilization{cpu.mode!="idle"}',
    "function": "avg",
    "window": "1m",
    "by": ["host"],
    "combine": "sum",
    "op": ">",
    "value": 0.8,
    "for": "1m",
}
YAML_RULE = """\
alert: DiskBusy
kind: threshold
metric: system.disk.io
function: rate
window: 5m
op: '>'
value: 1e8
"""


@dataclass
class Api:
    http: httpx.Client
    store: SqlStore

    def register(self, email: str = "ops@example.com") -> tuple[str, dict[str, str]]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return r.json()["client_id"], {"Authorization": f"Bearer {r.json()['api_key']}"}

    def send(self, auth: dict[str, str], host: str, *modes: str) -> None:
        series = [
            SeriesData("system.cpu.utilization", "1", "gauge", False, {"cpu.mode": m}, [1000.0], [0.1])
            for m in modes
        ]
        body = encode_batch(MetricBatch(f"{host}-1", host, {"host.name": host}, series))
        headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
        assert self.http.post("/api/v1/metrics", content=body, headers=headers).status_code == 200

    def post(self, auth: dict[str, str], body: Any, path: str = "/api/v1/rules") -> httpx.Response:
        if isinstance(body, str):
            headers = {"content-type": "application/yaml", **auth}
            return self.http.post(path, content=body, headers=headers)
        return self.http.post(path, json=body, headers=auth)


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",), max_alert_instances_per_tenant=CAP)
    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(http, store)


def test_a_new_tenant_lists_the_default_pack(api: Api) -> None:
    _, auth = api.register()
    r = api.http.get("/api/v1/rules", headers=auth)
    assert r.status_code == 200
    assert sorted(x["name"] for x in r.json()) == PACK
    assert {(x["origin"], x["enabled"]) for x in r.json()} == {("default", True)}
    cpu = api.http.get("/api/v1/rules/HighCpu", headers=auth).json()
    assert cpu["kind"] == "threshold" and cpu["group"] == "host"
    assert cpu["spec"]["metric"] == 'system.cpu.utilization{cpu.mode!="idle"}' and cpu["spec"]["for"] == "2m"


def test_create_read_replace_switch_delete(api: Api) -> None:
    client_id, auth = api.register()
    made = api.post(auth, RULE)
    assert made.status_code == 201, made.text
    assert made.json()["origin"] == "api" and made.json()["spec"]["value"] == 0.8
    assert api.post(auth, RULE).status_code == 409
    yaml_made = api.post(auth, YAML_RULE)
    assert yaml_made.status_code == 201, yaml_made.text and yaml_made.json()["spec"]["function"] == "rate"

    put = api.http.put("/api/v1/rules/BusyBox", json={**RULE, "value": 0.95}, headers=auth)
    assert put.status_code == 200 and put.json()["spec"]["value"] == 0.95
    assert api.http.get("/api/v1/rules/BusyBox", headers=auth).json()["spec"]["value"] == 0.95
    off = api.http.patch("/api/v1/rules/BusyBox", json={"enabled": False}, headers=auth)
    assert off.status_code == 200 and off.json()["enabled"] is False
    listed = api.http.get("/api/v1/rules", params={"origin": "api", "enabled": "false"}, headers=auth).json()
    assert [x["name"] for x in listed] == ["BusyBox"]

    assert api.http.delete("/api/v1/rules/BusyBox", headers=auth).status_code == 204
    assert api.http.get("/api/v1/rules/BusyBox", headers=auth).status_code == 404
    assert api.http.delete("/api/v1/rules/BusyBox", headers=auth).status_code == 404
    assert api.http.put("/api/v1/rules/BusyBox", json=RULE, headers=auth).status_code == 404
    with api.store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, client_id) if e.detail.get("name") == "BusyBox"]
    assert kinds == ["rule.created", "rule.updated", "rule.updated", "rule.deleted"]


def test_pack_rules_are_switched_off_not_replaced_or_deleted(api: Api) -> None:
    _, auth = api.register()
    for r in (
        api.http.put("/api/v1/rules/HighCpu", json={**RULE, "alert": "HighCpu"}, headers=auth),
        api.http.delete("/api/v1/rules/HighCpu", headers=auth),
    ):
        assert r.status_code == 409 and '{"enabled": false}' in r.json()["detail"]
    off = api.http.patch("/api/v1/rules/HighCpu", json={"enabled": False}, headers=auth)
    assert off.status_code == 200 and off.json() | {"updated_at": 0} == {
        **api.http.get("/api/v1/rules/HighCpu", headers=auth).json(),
        "updated_at": 0,
    }
    assert off.json()["enabled"] is False and off.json()["origin"] == "default"


@pytest.mark.parametrize(
    ("body", "line", "column", "words"),
    [
        ('{"alert": "X", "kind": "threshold",\n "metric": "m", "function": "median"}', 2, 29, "median"),
        (
            "alert: X\nkind: threshold\nmetric: 'cpu{mode=~\"(\"}'\nfunction: avg\nwindow: 1m\n"
            "op: '>'\nvalue: 1\n",
            3,
            21,
            "regular expression",
        ),
        ("alert: X\nkind: absence\nsilent: -5m\n", 3, 9, "negative"),
        ('{"alert": "X", "kind": "threshold",\n  "metric": "m" "function": "avg"}', 2, 17, "JSON"),
        (
            "alert: X\nkind: threshold\nmetric: m\nfunction: avg\nwindow: 1m\nop: '>'\nvalue: 1\n"
            "colour: red\n",
            8,
            1,
            "colour",
        ),
    ],
)
def test_bad_rules_are_422_naming_line_and_column(
    api: Api, body: str, line: int, column: int, words: str
) -> None:
    _, auth = api.register()
    if body.startswith("{"):
        r = api.http.post("/api/v1/rules", content=body, headers={"content-type": "application/json", **auth})
    else:
        r = api.post(auth, body)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert set(answer) == {"detail", "problems"} and answer["problems"], answer
    named = [p for p in answer["problems"] if words.lower() in p["message"].lower()]
    assert named, answer
    assert (named[0]["line"], named[0]["column"]) == (line, column), answer
    assert f"{named[0]['line']}:{named[0]['column']}: {named[0]['message']}" in answer["detail"]
    assert api.http.get("/api/v1/rules/X", headers=auth).status_code == 404  # nothing stored


def test_validate_checks_without_storing(api: Api) -> None:
    _, auth = api.register()
    good = api.post(auth, RULE, "/api/v1/rules/validate")
    assert good.status_code == 200 and good.json()["valid"] is True and good.json()["problems"] == []
    assert good.json()["rule"]["alert"] == "BusyBox" and good.json()["max_instances"] == CAP
    bad = api.post(auth, "alert: X\nkind: nope\n", "/api/v1/rules/validate")
    assert bad.status_code == 200 and bad.json()["valid"] is False
    assert bad.json()["problems"][0]["line"] == 2
    assert api.http.get("/api/v1/rules/BusyBox", headers=auth).status_code == 404


def test_the_instance_cap_refuses_a_rule_that_would_pass_it(api: Api) -> None:
    _, auth = api.register()
    for host in ("a", "b", "c"):
        api.send(auth, host, "user", "system", "idle")
    # the pack over these series: HostSilent 3, HighCpu 3 → 6 of 12; one instance per series is 6 more
    per_series = {k: v for k, v in RULE.items() if k != "by"} | {"alert": "PerSeries"}
    fits = api.post(auth, per_series)
    assert fits.status_code == 201, fits.text
    over = api.post(auth, {**RULE, "alert": "OneMore", "by": ["host", "cpu.mode"]})
    assert over.status_code == 422
    assert "would create 6 alert instances" in over.json()["detail"]
    assert "max_alert_instances_per_tenant" in over.json()["detail"] and over.json()["problems"] == []
    checked = api.post(
        auth, {**RULE, "alert": "OneMore", "by": ["host", "cpu.mode"]}, "/api/v1/rules/validate"
    )
    assert checked.json()["valid"] is False and checked.json()["instances"] == 6
    # switching a rule off frees its budget, switching it on again is checked
    assert api.http.patch("/api/v1/rules/PerSeries", json={"enabled": False}, headers=auth).status_code == 200
    assert api.post(auth, {**RULE, "alert": "OneMore", "by": ["host", "cpu.mode"]}).status_code == 201
    again = api.http.patch("/api/v1/rules/PerSeries", json={"enabled": True}, headers=auth)
    assert again.status_code == 422 and "PerSeries" in again.json()["detail"]


def test_another_tenants_rules_are_404(api: Api) -> None:
    _, mine = api.register("a@example.com")
    _, theirs = api.register("b@example.com")
    assert api.post(auth=mine, body=RULE).status_code == 201
    assert api.http.get("/api/v1/rules/BusyBox", headers=theirs).status_code == 404
    assert api.http.delete("/api/v1/rules/BusyBox", headers=theirs).status_code == 404
    assert api.http.patch("/api/v1/rules/BusyBox", json={"enabled": False}, headers=theirs).status_code == 404
    assert "BusyBox" not in [x["name"] for x in api.http.get("/api/v1/rules", headers=theirs).json()]


def test_bodies_that_are_neither_json_nor_yaml_or_misnamed(api: Api) -> None:
    _, auth = api.register()
    form = api.http.post("/api/v1/rules", content="a=b", headers={"content-type": "text/html", **auth})
    assert form.status_code == 415 and "application/yaml" in form.json()["detail"]
    renamed = api.http.put("/api/v1/rules/HighCpu", json=RULE, headers=auth)
    assert renamed.status_code == 422 and "BusyBox" in renamed.json()["detail"]
    long_group = api.post(auth, {**RULE, "group": "g" * 201})
    assert long_group.status_code == 422 and "200 characters" in long_group.json()["detail"]


def test_openapi_shows_the_rule_bodies(api: Api) -> None:
    doc = api.http.get("/openapi.json").json()
    post = doc["paths"]["/api/v1/rules"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "application/yaml"}
    fields = content["application/json"]["schema"]["properties"]
    assert {"alert", "kind", "metric", "for", "keep_firing_for", "by"} <= set(fields)
    assert "422" in post["responses"] and post["security"] == [{"ApiKey": ["admin"]}]
    assert "requestBody" in doc["paths"]["/api/v1/rules/{name}"]["put"]
    assert "requestBody" in doc["paths"]["/api/v1/rules/validate"]["post"]
    assert doc["paths"]["/api/v1/rules"]["get"]["security"] == [{"ApiKey": ["read"]}]
