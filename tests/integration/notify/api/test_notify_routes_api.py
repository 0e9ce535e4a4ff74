"""The route tree over HTTP (``/api/v1/notify/routes``) against the real app on both databases:
the default tree until one is stored, whole-tree writes with ``version`` (409 for a stale one), every
problem of a bad tree at once, JSON or YAML, one-route edits, tenant isolation."""

from __future__ import annotations

from infragent.store import notify_config as nc
from support.notify_api import Tenant
from support.web import Site

TREE = {
    "group_by": ["alertname", "host"],
    "receivers": ["ops"],
    "routes": [
        {"id": "crit", "matchers": ['severity="critical"'], "receivers": ["pager"], "group_wait": "10s"},
        {"id": "db", "matchers": ['service=~"postgres|mysql"'], "receivers": ["ops"], "continue": True},
    ],
}


def _channels(site: Site, tenant: Tenant, *names: str) -> None:
    with site.store.write() as conn:
        for name in names:
            nc.create_channel(
                conn, tenant.client_id, name=name, kind="inapp", settings={}, secrets={}, actor="t", now=1.0
            )


def test_the_default_tree_then_versioned_writes(site: Site, alpha: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    _channels(site, alpha, "ops", "pager")
    first = http.get("/api/v1/notify/routes", headers=alpha.auth("read")).json()
    assert first["default"] is True and first["version"] == 0
    assert first["tree"] == {"id": "root", "receivers": ["ops", "pager"]}

    stored = http.put("/api/v1/notify/routes", json={**TREE, "version": 0}, headers=admin)
    assert stored.status_code == 200, stored.text
    assert stored.json()["version"] == 1 and stored.json()["default"] is False
    assert [r["id"] for r in stored.json()["tree"]["routes"]] == ["crit", "db"]
    stale = http.put("/api/v1/notify/routes", json={"tree": TREE, "version": 0}, headers=admin)
    assert stale.status_code == 409 and "version 1" in stale.json()["detail"]
    again = http.put("/api/v1/notify/routes", json={"tree": TREE, "version": 1}, headers=admin)
    assert again.json()["version"] == 2
    assert http.put("/api/v1/notify/routes", json=TREE, headers=alpha.auth("operate")).status_code == 403

    yaml_tree = (
        "receivers: [ops]\nroutes:\n  - id: night\n    matchers: ['team=\"web\"']\n    receivers: [pager]\n"
    )
    r = http.put(
        "/api/v1/notify/routes", content=yaml_tree, headers={**admin, "Content-Type": "application/yaml"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["tree"]["routes"][0]["id"] == "night" and r.json()["version"] == 3


def test_a_bad_tree_names_every_problem_and_stores_nothing(site: Site, alpha: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    _channels(site, alpha, "ops")
    bad = {
        "receivers": ["ops"],
        "routes": [
            {"matchers": ['severity="critical"'], "receivers": ["pagr"]},
            {"matchers": ["nonsense"], "group_wait": "5 min"},
            {"matchers": ['team="x"'], "template": {"title": "{% if %}"}},
        ],
    }
    r = http.put("/api/v1/notify/routes", json=bad, headers=admin)
    assert r.status_code == 422, r.text
    fields = {p["field"] for p in r.json()["problems"]}
    assert {"routes[0].receivers[0]", "routes[1].group_wait", "routes[2].template.title"} <= fields
    assert any(f.startswith("routes[1].matchers") for f in fields)
    assert http.get("/api/v1/notify/routes", headers=admin).json()["default"] is True
    broken = http.put(
        "/api/v1/notify/routes", content="{not json", headers={**admin, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert http.put("/api/v1/notify/routes", json=[1, 2], headers=admin).status_code == 422
    assert http.put("/api/v1/notify/routes", json={"version": "x"}, headers=admin).status_code == 422


def test_one_route_is_added_read_replaced_and_removed(site: Site, alpha: Tenant, beta: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    _channels(site, alpha, "ops", "pager")
    assert http.put("/api/v1/notify/routes", json=TREE, headers=admin).status_code == 200

    added = http.post(
        "/api/v1/notify/routes",
        json={"parent": "db", "route": {"matchers": ['env="dev"'], "receivers": ["pager"]}},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    assert added.json()["route"]["id"] == "db.0" and added.json()["version"] == 2
    named = http.post(
        "/api/v1/notify/routes", json={"route": {"id": "web", "matchers": ['team="web"']}}, headers=admin
    )
    assert named.json()["route"]["id"] == "web"
    nowhere = http.post("/api/v1/notify/routes", json={"parent": "nope", "route": {}}, headers=admin)
    assert nowhere.status_code == 404

    got = http.get("/api/v1/notify/routes/db", headers=alpha.auth("read")).json()
    assert got["route"]["routes"][0]["id"] == "db.0" and got["version"] == 3
    assert http.get("/api/v1/notify/routes/root", headers=admin).json()["route"]["id"] == "root"
    assert http.get("/api/v1/notify/routes/db", headers=beta.auth("admin")).status_code == 404

    replaced = http.put(
        "/api/v1/notify/routes/crit",
        json={"route": {"matchers": ['severity="critical"'], "receivers": ["ops"]}, "version": 3},
        headers=admin,
    )
    assert replaced.status_code == 200 and replaced.json()["route"]["receivers"] == ["ops"]
    bad = http.put("/api/v1/notify/routes/crit", json={"route": {"receivers": ["nobody"]}}, headers=admin)
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "routes[0].receivers[0]"
    assert http.put("/api/v1/notify/routes/zzz", json={"route": {}}, headers=admin).status_code == 404

    gone = http.delete("/api/v1/notify/routes/db", headers=admin)
    assert gone.status_code == 200 and [r["id"] for r in gone.json()["tree"]["routes"]] == ["crit", "web"]
    assert http.delete("/api/v1/notify/routes/root", headers=admin).status_code == 422
    assert http.delete("/api/v1/notify/routes/db", headers=admin).status_code == 404
    stale = http.delete("/api/v1/notify/routes/web", params={"version": 1}, headers=admin)
    assert stale.status_code == 409
