"""The runs, approvals, guardrails, kill-switch and effectiveness routes over HTTP (both databases):
scopes (a viewer or read key cannot approve; an operator can), another tenant's ids as 404, the
expiry refusal, answering twice, cancel, guardrails validation as 422 JSON naming each field."""

from __future__ import annotations

from infragent.responder.step_run import Start
from infragent.store import audit
from support.notify_api import Tenant
from support.run_rows import APPROVED_RESTART, PLAIN_RESTART, Clock, add_approval, advance, queue_run, row_of
from support.web import Site


def _waiting(site: Site, tenant: Tenant, clock: Clock) -> tuple[str, str]:
    run_id = queue_run(site.store, tenant.client_id, APPROVED_RESTART, clock.now)
    advance(site.store, run_id, APPROVED_RESTART, Start(), clock.now)
    return run_id, add_approval(site.store, tenant.client_id, run_id, 1, clock.now)


def test_runs_list_and_detail(site: Site, alpha: Tenant, beta: Tenant, clock: Clock) -> None:
    run_id, _ = _waiting(site, alpha, clock)
    got = site.http.get("/api/v1/runs", params={"status": "waiting_approval"}, headers=alpha.auth("read"))
    assert got.status_code == 200
    [run] = got.json()["runs"]
    assert run["id"] == run_id and run["current"]["waiting_for"] == "approval"
    assert run["current"]["action"] == "restart" and got.json()["next_before"] is None
    one = site.http.get(f"/api/v1/runs/{run_id}", headers=alpha.auth("read"))
    assert one.status_code == 200 and one.json()["runbook"] == "restart-web"
    assert site.http.get(f"/api/v1/runs/{run_id}", headers=beta.auth("read")).status_code == 404
    assert site.http.get("/api/v1/runs", headers=beta.auth("read")).json()["runs"] == []
    bad = site.http.get("/api/v1/runs", params={"status": "sleeping"}, headers=alpha.auth("read"))
    assert bad.status_code == 422 and "status" in bad.json()["detail"]


def test_an_operator_approves_once_a_viewer_cannot(
    site: Site, alpha: Tenant, beta: Tenant, clock: Clock
) -> None:
    run_id, approval_id = _waiting(site, alpha, clock)
    url = f"/api/v1/approvals/{approval_id}/approve"
    viewer = site.person(alpha.client_id, "viewer")
    assert site.http.post(url, headers=viewer.browser_headers).status_code == 403
    refused = site.http.post(url, headers=alpha.auth("read"))
    assert refused.status_code == 403 and refused.json()["required_scope"] == "operate"
    assert site.http.post(url, headers=beta.auth("operate")).status_code == 404
    listed = site.http.get(
        "/api/v1/approvals", params={"status": "pending"}, headers=alpha.auth("read")
    ).json()
    assert [a["id"] for a in listed["approvals"]] == [approval_id]
    assert listed["approvals"][0]["seconds_left"] == 900.0
    operator = site.person(alpha.client_id, "operator")
    clock.now += 60
    ok = site.http.post(url, json={"note": "go ahead"}, headers=operator.browser_headers)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert (body["status"], body["decided_by"], body["note"]) == (
        "approved",
        f"user:{operator.user_id}",
        "go ahead",
    )
    assert row_of(site.store, run_id).next_at == clock.now
    twice = site.http.post(f"/api/v1/approvals/{approval_id}/reject", headers=alpha.auth("operate"))
    assert twice.status_code == 409 and twice.json()["code"] == "decided"


def test_an_expired_approval_is_refused_and_recorded(site: Site, alpha: Tenant, clock: Clock) -> None:
    _, approval_id = _waiting(site, alpha, clock)
    clock.now += 900
    late = site.http.post(f"/api/v1/approvals/{approval_id}/approve", headers=alpha.auth("operate"))
    assert late.status_code == 409
    assert late.json()["code"] == "expired" and "nothing was run" in late.json()["detail"]
    listed = site.http.get(
        "/api/v1/approvals", params={"status": "expired"}, headers=alpha.auth("read")
    ).json()
    [expired] = listed["approvals"]
    assert (expired["id"], expired["decided_by"]) == (approval_id, "system:expiry")
    with site.store.read() as conn:
        assert [e.kind for e in audit.entries(conn, alpha.client_id, [approval_id])] == ["approval.expired"]


def test_cancel(site: Site, alpha: Tenant, beta: Tenant, clock: Clock) -> None:
    run_id = queue_run(site.store, alpha.client_id, PLAIN_RESTART, clock.now)
    url = f"/api/v1/runs/{run_id}/cancel"
    assert site.http.post(url, headers=alpha.auth("read")).status_code == 403
    assert site.http.post(url, headers=beta.auth("operate")).status_code == 404
    got = site.http.post(url, json={"reason": "wrong host"}, headers=alpha.auth("operate"))
    assert got.status_code == 202 and got.json()["cancel_reason"] == "wrong host"
    assert got.json()["cancel_requested_by"].startswith("key:")
    bad = site.http.post(url, json={"reason": "x", "force": True}, headers=alpha.auth("operate"))
    assert bad.status_code == 422 and bad.json()["errors"]
    missing = site.http.post("/api/v1/runs/nope/cancel", headers=alpha.auth("operate"))
    assert missing.status_code == 404 and missing.json() == {
        "detail": "run 'nope' not found",
        "code": "not_found",
    }


def test_guardrails_read_write_and_validation(site: Site, alpha: Tenant) -> None:
    got = site.http.get("/api/v1/guardrails", headers=alpha.auth("read")).json()
    assert got["budget"] == {"limit": 3, "window_s": 1800.0, "default": True}
    assert got["approval_llm"] is True and got["kill_switch"]["on"] is False
    body = {"shadow": True, "shadow_runbooks": ["restart-web"], "budget_limit": 2}
    assert site.http.put("/api/v1/guardrails", json=body, headers=alpha.auth("operate")).status_code == 403
    put = site.http.put("/api/v1/guardrails", json=body, headers=alpha.auth("admin"))
    assert put.status_code == 200, put.text
    assert put.json()["shadow"] is True and put.json()["budget"]["limit"] == 2
    assert put.json()["budget"]["default"] is False and put.json()["shadow_runbooks"] == ["restart-web"]
    bad = site.http.put(
        "/api/v1/guardrails",
        json={"budget_limit": -1, "budget_window_s": 0, "approval_actions": ["", "x"]},
        headers=alpha.auth("admin"),
    )
    assert bad.status_code == 422
    assert [p["field"] for p in bad.json()["problems"]] == [
        "approval_actions[0]",
        "budget_limit",
        "budget_window_s",
    ]
    null = site.http.put("/api/v1/guardrails", json={"shadow": None}, headers=alpha.auth("admin"))
    assert null.status_code == 422 and null.json()["problems"] == [
        {"field": "shadow", "message": "must not be null"}
    ]
    shape = site.http.put("/api/v1/guardrails", json={"shadow": "sometimes"}, headers=alpha.auth("admin"))
    assert shape.status_code == 422 and shape.json()["errors"]
    reset = site.http.put(
        "/api/v1/guardrails", json={"budget_limit": None}, headers=alpha.auth("admin")
    ).json()
    assert reset["budget"]["default"] is True and reset["shadow"] is True


def test_kill_switch(site: Site, alpha: Tenant, beta: Tenant) -> None:
    assert (
        site.http.put("/api/v1/kill-switch", json={"on": True}, headers=alpha.auth("operate")).status_code
        == 403
    )
    on = site.http.put(
        "/api/v1/kill-switch", json={"on": True, "reason": "storm"}, headers=alpha.auth("admin")
    )
    assert on.status_code == 200 and on.json()["on"] is True and on.json()["reason"] == "storm"
    seen = site.http.get("/api/v1/kill-switch", headers=beta.auth("read")).json()
    assert seen["on"] is True  # global: every tenant's automatic actions stop
    assert site.http.get("/api/v1/guardrails", headers=beta.auth("read")).json()["kill_switch"]["on"] is True
    bad = site.http.put("/api/v1/kill-switch", json={"on": "yes please"}, headers=alpha.auth("admin"))
    assert bad.status_code == 422
    off = site.http.put("/api/v1/kill-switch", json={"on": False}, headers=alpha.auth("admin")).json()
    assert off["on"] is False


def test_effectiveness(site: Site, alpha: Tenant, clock: Clock) -> None:
    queue_run(site.store, alpha.client_id, PLAIN_RESTART, clock.now)
    got = site.http.get("/api/v1/effectiveness", headers=alpha.auth("read"))
    assert got.status_code == 200
    [rb] = got.json()["runbooks"]
    assert (rb["name"], rb["runs"], rb["active"], rb["success_rate"]) == ("plain-restart", 1, 1, None)
    assert site.http.get("/api/v1/effectiveness", headers=alpha.auth("ingest")).status_code == 403
    bad = site.http.get("/api/v1/effectiveness", params={"since": "yesterday"}, headers=alpha.auth("read"))
    assert bad.status_code == 422
