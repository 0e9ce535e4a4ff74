"""Channels over HTTP (``/api/v1/notify/channels``) against the real app under uvicorn, on both
databases: validation with every field named, the outbound-URL policy at save time, write-only
secrets (no answer, audit entry or error carries one), tenant isolation, and a channel a route
names cannot be deleted."""

from __future__ import annotations

import httpx
import orjson

from infragent.config import Settings
from infragent.store import audit
from infragent.store import notify_config as nc
from infragent.store.sql import SqlStore
from support.notify_api import Tenant
from support.web import Site, serve_site

SLACK_SECRET = "T000/B000/slack-token-4f9a"
SLACK_URL = f"http://127.0.0.1:9/services/{SLACK_SECRET}"
PASSWORD = "smtp-password-77c1"


def _no_secret(*answers: httpx.Response, secrets: tuple[str, ...] = (SLACK_SECRET, PASSWORD)) -> None:
    for r in answers:
        for secret in secrets:
            assert secret not in r.text, (r.request.method, r.request.url, r.text)


def test_a_channel_is_created_read_changed_and_its_secrets_never_shown(site: Site, alpha: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    body = {"name": "ops-slack", "kind": "slack", "secrets": {"url": SLACK_URL}}
    created = http.post("/api/v1/notify/channels", json=body, headers=admin)
    assert created.status_code == 201, created.text
    ch = created.json()
    assert (ch["kind"], ch["settings"], ch["secrets_set"], ch["enabled"]) == ("slack", {}, ["url"], True)
    assert ch["signing_secret"] is None
    taken = http.post("/api/v1/notify/channels", json=body, headers=admin)
    assert taken.status_code == 409 and "ops-slack" in taken.json()["detail"]

    listed = http.get("/api/v1/notify/channels", headers=alpha.auth("read"))
    one = http.get(f"/api/v1/notify/channels/{ch['id']}", headers=alpha.auth("read"))
    assert [c["name"] for c in listed.json()["channels"]] == ["ops-slack"] and one.json()["id"] == ch["id"]

    renamed = http.patch(
        f"/api/v1/notify/channels/{ch['id']}", json={"name": "slack-2", "enabled": False}, headers=admin
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["enabled"], renamed.json()["secrets_set"]) == (
        "slack-2",
        False,
        ["url"],
    )
    new_url = "http://127.0.0.1:9/services/T000/B000/rotated-91be"
    rotated = http.patch(
        f"/api/v1/notify/channels/{ch['id']}", json={"secrets": {"url": new_url}}, headers=admin
    )
    assert rotated.status_code == 200 and "rotated-91be" not in rotated.text
    with site.store.read() as conn:
        assert nc.get_channel(conn, alpha.client_id, ch["id"]).secrets == {"url": new_url}
        details = orjson.dumps([e.detail for e in audit.entries(conn, alpha.client_id, [ch["id"]])]).decode()
    assert SLACK_SECRET not in details and "rotated-91be" not in details
    _no_secret(created, taken, listed, one, renamed)


def test_every_bad_field_is_named_at_once_without_echoing_a_secret(site: Site, alpha: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    body = {
        "name": "mail",
        "kind": "email",
        "settings": {"host": "127.0.0.1", "port": "twenty-five", "to": ["not-an-address"], "color": "red"},
        "secrets": {"password": PASSWORD, "url": "x"},
    }
    r = http.post("/api/v1/notify/channels", json=body, headers=admin)
    assert r.status_code == 422, r.text
    fields = {p["field"] for p in r.json()["problems"]}
    assert {"settings.port", "settings.to[0]", "settings.color", "secrets.url", "settings.from"} <= fields
    unknown = http.post(
        "/api/v1/notify/channels", json={"name": "x", "kind": "carrier-pigeon"}, headers=admin
    )
    assert unknown.status_code == 422
    _no_secret(r, unknown)

    ok = {**body, "settings": {"host": "127.0.0.1", "from": "ia@example.com", "to": ["ops@example.com"]}}
    ok["secrets"] = {"password": PASSWORD}
    created = http.post("/api/v1/notify/channels", json=ok, headers=admin)
    assert created.status_code == 201, created.text
    # the defaults are filled in; the password is kept when the settings change
    assert created.json()["settings"]["security"] == "starttls" and created.json()["settings"]["port"] == 587
    cid = created.json()["id"]
    bad_patch = http.patch(f"/api/v1/notify/channels/{cid}", json={"settings": {"port": 0}}, headers=admin)
    assert bad_patch.status_code == 422 and bad_patch.json()["problems"][0]["field"] == "settings.port"
    patched = http.patch(
        f"/api/v1/notify/channels/{cid}", json={"settings": {"port": 2525, "username": "ia"}}, headers=admin
    )
    assert patched.status_code == 200 and patched.json()["settings"]["port"] == 2525
    assert patched.json()["secrets_set"] == ["password"]
    removed = http.patch(
        f"/api/v1/notify/channels/{cid}", json={"settings": {"username": None}}, headers=admin
    )
    assert "username" not in removed.json()["settings"]
    _no_secret(created, bad_patch, patched, removed)


def test_a_webhook_channel_gets_a_signing_secret_shown_once(site: Site, alpha: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    body = {"name": "hook", "kind": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"}}
    r = http.post("/api/v1/notify/channels", json=body, headers=admin)
    assert r.status_code == 201, r.text
    secret = r.json()["signing_secret"]
    assert secret.startswith("whsec_") and r.json()["secrets_set"] == ["secret"]
    again = http.get(f"/api/v1/notify/channels/{r.json()['id']}", headers=admin)
    assert secret not in again.text and "signing_secret" not in again.json()
    with site.store.read() as conn:
        assert nc.get_channel(conn, alpha.client_id, r.json()["id"]).secrets == {"secret": secret}
    own = {**body, "name": "hook-2", "secrets": {"secret": "whsec_" + "A" * 32}}
    mine = http.post("/api/v1/notify/channels", json=own, headers=admin)
    assert mine.status_code == 201 and mine.json()["signing_secret"] is None and "AAAA" not in mine.text


def test_the_outbound_policy_refuses_private_addresses_naming_the_field_only(
    store: SqlStore, alpha: Tenant
) -> None:
    with serve_site(store, Settings()) as site:  # no network allowed beyond the public one
        http, admin = site.http, alpha.auth("admin")
        slack = http.post(
            "/api/v1/notify/channels",
            json={"name": "s", "kind": "slack", "secrets": {"url": SLACK_URL}},
            headers=admin,
        )
        assert slack.status_code == 422, slack.text
        (problem,) = slack.json()["problems"]
        assert problem["field"] == "secrets.url" and problem["message"].startswith("refused: ")
        assert "loopback" in problem["message"]
        metadata = http.post(
            "/api/v1/notify/channels",
            json={"name": "w", "kind": "webhook", "settings": {"url": "http://169.254.169.254/latest"}},
            headers=admin,
        )
        assert metadata.status_code == 422 and metadata.json()["problems"][0]["field"] == "settings.url"
        mail = http.post(
            "/api/v1/notify/channels",
            json={
                "name": "m",
                "kind": "email",
                "settings": {"host": "10.1.2.3", "from": "a@example.com", "to": ["b@example.com"]},
            },
            headers=admin,
        )
        assert mail.status_code == 422 and mail.json()["problems"][0]["field"] == "settings.host"
        apprise = http.post(
            "/api/v1/notify/channels",
            json={
                "name": "a",
                "kind": "apprise",
                "secrets": {"urls": ["ntfy://ok.example", "json://10.1.2.3/tok-5150"]},
            },
            headers=admin,
        )
        assert apprise.status_code == 422, apprise.text
        assert [p["field"] for p in apprise.json()["problems"]] == ["secrets.urls[1]"]
        assert "tok-5150" not in apprise.text
        _no_secret(slack, metadata, mail)
        with site.store.read() as conn:
            assert nc.list_channels(conn, alpha.client_id) == []


def test_channels_are_per_tenant_and_writing_needs_admin(site: Site, alpha: Tenant, beta: Tenant) -> None:
    http = site.http
    body = {"name": "inbox", "kind": "inapp", "settings": {"roles": ["admin", "operator"]}}
    assert http.post("/api/v1/notify/channels", json=body, headers=alpha.auth("operate")).status_code == 403
    ch = http.post("/api/v1/notify/channels", json=body, headers=alpha.auth("admin")).json()
    path = f"/api/v1/notify/channels/{ch['id']}"
    assert http.get(path, headers=beta.auth("admin")).status_code == 404
    assert http.patch(path, json={"enabled": False}, headers=beta.auth("admin")).status_code == 404
    assert http.delete(path, headers=beta.auth("admin")).status_code == 404
    assert http.get("/api/v1/notify/channels", headers=beta.auth("read")).json() == {"channels": []}
    # the same name in another tenant is another channel
    assert http.post("/api/v1/notify/channels", json=body, headers=beta.auth("admin")).status_code == 201


def test_a_channel_a_route_names_is_not_deleted(site: Site, alpha: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    ch = http.post("/api/v1/notify/channels", json={"name": "pager", "kind": "inapp"}, headers=admin).json()
    tree = {"routes": [{"id": "crit", "matchers": ['severity="critical"'], "escalation": [
        {"after": "15m", "receivers": ["pager"]}]}]}  # fmt: skip
    assert http.put("/api/v1/notify/routes", json=tree, headers=admin).status_code == 200
    refused = http.delete(f"/api/v1/notify/channels/{ch['id']}", headers=admin)
    assert refused.status_code == 409 and "route" in refused.json()["detail"]
    assert http.put("/api/v1/notify/routes", json={}, headers=admin).status_code == 200
    assert http.delete(f"/api/v1/notify/channels/{ch['id']}", headers=admin).status_code == 204
    assert http.get(f"/api/v1/notify/channels/{ch['id']}", headers=admin).status_code == 404
