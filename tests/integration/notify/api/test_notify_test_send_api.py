"""``POST /api/v1/notify/channels/{id}/test`` against the real app and a Slack stand-in on
127.0.0.1, on both databases: one send, no retry, the receiver's answer as the outcome (200 also
when it refused), a template tried out, the secret URL in no answer, and an in-app test in the
caller's own inbox."""

from __future__ import annotations

from infragent.store import notify_reads
from support.notify_api import Tenant
from support.servers import closed_port
from support.standins.slack import SlackStandIn
from support.web import Site


def test_a_test_send_reaches_the_receiver_once_and_answers_its_outcome(
    site: Site, alpha: Tenant, beta: Tenant
) -> None:
    http = site.http
    with SlackStandIn() as slack:
        created = http.post(
            "/api/v1/notify/channels",
            json={"name": "ops", "kind": "slack", "secrets": {"url": slack.webhook_url}},
            headers=alpha.auth("admin"),
        )
        assert created.status_code == 201, created.text
        path = f"/api/v1/notify/channels/{created.json()['id']}/test"
        secret_part = slack.webhook_url.rsplit("/", 1)[-1]

        assert http.post(path, headers=alpha.auth("read")).status_code == 403
        assert http.post(path, headers=beta.auth("operate")).status_code == 404
        ok = http.post(path, headers=alpha.auth("operate"))
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"outcome": "delivered", "status_code": 200, "error": None}
        slack.wait_for(1)
        assert "Disk almost full" in str(slack.received[0].json)

        slack.fail_next(1, 500)
        failed = http.post(path, headers=alpha.auth("operate"))
        assert failed.status_code == 200 and failed.json()["outcome"] in ("retry", "failed")
        assert failed.json()["status_code"] == 500
        assert len(slack.received) == 2  # a test is never retried

        tried = http.post(
            path, json={"template": {"title": "TEST {{ incidents | length }}"}}, headers=alpha.auth()
        )
        assert tried.json()["outcome"] == "delivered"
        slack.wait_for(3)
        assert "TEST 2" in str(slack.received[2].json)
        bad = http.post(path, json={"template": {"title": "{% if %}", "color": "x"}}, headers=alpha.auth())
        assert bad.status_code == 422
        assert {p["field"] for p in bad.json()["problems"]} == {"template.title", "template.color"}
        for r in (created, ok, failed, tried, bad):
            assert secret_part not in r.text


def test_an_inapp_test_lands_in_the_callers_inbox(site: Site, alpha: Tenant) -> None:
    http = site.http
    ch = http.post("/api/v1/notify/channels", json={"name": "inbox", "kind": "inapp"}, headers=alpha.auth())
    path = f"/api/v1/notify/channels/{ch.json()['id']}/test"
    keyed = http.post(path, headers=alpha.auth("operate"))
    assert keyed.status_code == 200 and keyed.json()["outcome"] == "failed"
    operator = site.person(alpha.client_id, "operator")
    r = http.post(path, headers=operator.browser_headers)
    assert r.json() == {"outcome": "delivered", "status_code": None, "error": None}
    with site.store.read() as conn:
        (item,) = notify_reads.inbox_list(conn, alpha.client_id, operator.user_id)
    assert item.kind == "test" and item.title


def test_an_unreachable_receiver_is_an_outcome_not_an_error(site: Site, alpha: Tenant) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    body = {"name": "hook", "kind": "webhook", "settings": {"url": url}}
    ch = site.http.post("/api/v1/notify/channels", json=body, headers=alpha.auth()).json()
    r = site.http.post(f"/api/v1/notify/channels/{ch['id']}/test", headers=alpha.auth("operate"))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] in ("retry", "failed") and r.json()["error"]
    assert r.json()["status_code"] is None
