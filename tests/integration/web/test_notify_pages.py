"""The notification pages against the real app under uvicorn on both databases: what each role sees
(viewer: no button), the forms' answers (every problem as ``field path: message``, 422 to a plain
request, the fragment to htmx), CSRF, secrets never on a page, and the incident page's Silence
link pre-filled from the incident's labels.

Deliveries are written as the pipeline writes them (``support.notify_pages.dead_delivery``); every
other change goes through the pages themselves, the way the browser's htmx sends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.notify.config import matcher_text
from infragent.notify.model import Matcher
from infragent.notify.route import incident_labels
from infragent.store import incident_reads, notify_config
from support.dashboard_data import incident
from support.dom import by_test, one
from support.notify_pages import SECRET_TOKEN, Browser, dead_delivery, slack_url
from support.standins import SlackStandIn
from support.web import Site

NOW = float(int(time.time()))
BAD_TREE = """\
receivers: [nobody]
group_wait: 5 min
routes:
  - matchers: ['severity="critical"']
    continue: maybe
"""
GOOD_TREE = """\
receivers: [pager]
group_by: [alertname, host]
routes:
  - id: db
    matchers: ['service=~"db.*"']
    group_wait: 10s
"""


@pytest.fixture
def settings() -> Settings:
    return Settings(webhook_allowed_networks=("127.0.0.0/8",))


@pytest.fixture
def clock() -> Callable[[], float]:
    return lambda: NOW


def _browser(site: Site, client_id: str, role: str) -> Browser:
    return Browser(site, site.person(client_id, role))


ROLE_BUTTONS = {
    # page, marker of the page, {role: buttons it shows}
    "/notify/channels": {
        "admin": {"channel-create", "channel-test", "channel-edit", "channel-disable", "channel-delete"},
        "operator": {"channel-test"},
        "viewer": set(),
    },
    "/notify/routes": {
        "admin": {"routes-editor", "routes-save", "routes-validate"},
        "operator": set(),
        "viewer": set(),
    },
    "/notify/silences": {
        "admin": {"silence-new", "silence-expire"},
        "operator": {"silence-new", "silence-expire"},
        "viewer": set(),
    },
    "/notify/deliveries": {"admin": {"delivery-retry"}, "operator": {"delivery-retry"}, "viewer": set()},
}
ALL_BUTTONS = set().union(*(b for roles in ROLE_BUTTONS.values() for b in roles.values()))


def test_each_page_shows_each_role_its_buttons_and_the_viewer_none(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    channel_id = admin.create_channel("ops-slack", "slack", {"secrets.url": slack_url("http://127.0.0.1:9")})
    admin.post("/notify/silences", {"matchers": 'host="web-1"', "duration": "1h", "comment": "maintenance"})
    dead_delivery(site.store, acme, channel_id, NOW - 5)
    for role in ("admin", "operator", "viewer"):
        who = _browser(site, acme, role)
        for path, roles in ROLE_BUTTONS.items():
            r = who.get(path)
            assert r.status_code == 200, (role, path, r.status_code)
            shown = {b for b in ALL_BUTTONS if by_test(r.text, b)}
            assert shown == roles[role], (role, path)
            assert by_test(r.text, "nav-notify") and by_test(r.text, "notify-tabs")
            assert by_test(r.text, "inbox-badge"), "every page's menu carries the unread badge"


def test_the_create_form_names_every_field_at_fault(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    plain = admin.post("/notify/channels", {"name": "", "kind": "email", "settings.port": "abc"}, htmx=False)
    assert plain.status_code == 422
    problems = {p.attrs["data-field"]: p.text for p in by_test(plain.text, "notify-problem")}
    assert problems["name"] == "name: required"
    assert problems["settings.port"].startswith("settings.port: ")
    assert {"settings.host", "settings.from", "settings.to"} <= problems.keys()
    fragment = admin.post("/notify/channels", {"name": "x", "kind": "slack"})
    assert fragment.status_code == 200 and "<html" not in fragment.text  # htmx swaps only 2xx
    assert [p.text for p in by_test(fragment.text, "notify-problem")] == ["secrets.url: required"]
    with site.store.read() as conn:
        assert notify_config.list_channels(conn, acme) == []


def test_a_refused_url_is_named_without_the_secret(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    r = admin.post(
        "/notify/channels",
        {"name": "meta", "kind": "slack", "secrets.url": slack_url("http://169.254.169.254")},
    )
    found = one(r.text, "notify-problem")
    assert found.attrs["data-field"] == "secrets.url" and "refused" in found.text
    assert SECRET_TOKEN not in r.text


def test_secrets_never_reach_a_page(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    created = admin.post(
        "/notify/channels", {"name": "ops", "kind": "slack", "secrets.url": slack_url("http://127.0.0.1:9")}
    )
    row = one(created.text, "channel-row")
    channel_id = row.attrs["data-channel-id"]
    assert one(created.text, "channel-secrets").text == "url ✓"
    pages = [created.text]
    for who in (admin, _browser(site, acme, "operator"), _browser(site, acme, "viewer")):
        pages.append(who.get("/notify/channels").text)
    pages.append(admin.get(f"/notify/channels/{channel_id}").text)
    # an edit that changes a setting and leaves the secret blank keeps the secret
    saved = admin.post(f"/notify/channels/{channel_id}", {"name": "ops-renamed", "secrets.url": ""})
    assert saved.headers.get("HX-Redirect") == "/notify/channels"
    pages.append(admin.post(f"/notify/channels/{channel_id}/disable", {}).text)
    for html in pages:
        assert SECRET_TOKEN not in html
    with site.store.read() as conn:
        stored = notify_config.get_channel(conn, acme, channel_id)
    assert stored.name == "ops-renamed" and SECRET_TOKEN in stored.secrets["url"] and not stored.enabled


def test_csrf_is_required_on_every_form(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    forged = {"Cookie": f"{tokens.COOKIE}={admin.user.cookie}", "HX-Request": "true"}
    for path, data in (
        ("/notify/channels", {"name": "x", "kind": "slack", "secrets.url": slack_url("http://127.0.0.1:9")}),
        ("/notify/silences", {"matchers": 'host="a"', "duration": "1h", "comment": "x"}),
        ("/notify/routes", {"text": "receivers: []", "version": "0"}),
        ("/inbox/read", {}),
    ):
        assert site.http.post(path, data=data, headers=forged).status_code == 403, path
    with site.store.read() as conn:
        assert notify_config.list_channels(conn, acme) == []
        assert notify_config.list_silences(conn, acme, state=None, now=NOW) == []


def test_the_route_editor_validates_saves_and_refuses_a_stale_version(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    admin.create_channel("pager", "webhook", {"settings.url": "http://127.0.0.1:9/hook"})
    page = admin.get("/notify/routes")
    assert one(page.text, "routes-default")  # none stored: every enabled channel at the root
    bad = BAD_TREE
    checked = admin.post("/notify/routes/validate", {"text": bad}, htmx=False)
    assert checked.status_code == 422
    fields = {p.attrs["data-field"] for p in by_test(checked.text, "notify-problem")}
    assert {"receivers[0]", "group_wait", "routes[0].continue"} <= fields
    good = GOOD_TREE
    assert by_test(admin.post("/notify/routes/validate", {"text": good}).text, "routes-ok")
    saved = admin.post("/notify/routes", {"text": good, "version": "0"})
    assert "version 1" in one(saved.text, "routes-saved").text
    node = [n for n in by_test(saved.text, "route-node") if n.attrs["data-route-id"] == "db"]
    assert node and 'service=~"db.*"' in node[0].text and "wait 10s" in node[0].text
    stale = admin.post("/notify/routes", {"text": good, "version": "0"}, htmx=False)
    assert stale.status_code == 409 and by_test(stale.text, "routes-conflict")
    # a channel a route names cannot be deleted
    channel = one(admin.get("/notify/channels").text, "channel-row").attrs["data-channel-id"]
    refused = admin.post(f"/notify/channels/{channel}/delete", {}, htmx=False)
    assert refused.status_code == 409 and "route" in one(refused.text, "notify-problem").text


def test_silences_are_created_listed_and_expired(site: Site, acme: str) -> None:
    operator = _browser(site, acme, "operator")
    refused = operator.post(
        "/notify/silences", {"matchers": "", "duration": "soon", "comment": ""}, htmx=False
    )
    assert refused.status_code == 422
    fields = {p.attrs["data-field"] for p in by_test(refused.text, "notify-problem")}
    assert {"matchers", "duration", "comment"} <= fields
    made = operator.post(
        "/notify/silences", {"matchers": 'host=~"web-.*"', "duration": "2h", "comment": "deploy"}
    )
    assert made.headers["HX-Redirect"].startswith("/notify/silences?created=")
    listed = operator.get("/notify/silences")
    active = [r for r in by_test(listed.text, "silence-row") if r.attrs["data-state"] == "active"]
    assert len(active) == 1 and 'host=~"web-.*"' in active[0].text
    silence_id = active[0].attrs["data-silence-id"]
    expired = operator.post(f"/notify/silences/{silence_id}/expire", {})
    states = {r.attrs["data-silence-id"]: r.attrs["data-state"] for r in by_test(expired.text, "silence-row")}
    assert states == {silence_id: "expired"}


def test_the_incident_page_links_to_a_silence_pre_filled_with_its_labels(site: Site, acme: str) -> None:
    incident_id = incident(site.store, acme, NOW - 30, node="web-7")
    with site.store.read() as conn:
        found = incident_reads.get_incident(conn, acme, incident_id)
    assert found is not None
    labels = incident_labels(found)
    viewer, operator = _browser(site, acme, "viewer"), _browser(site, acme, "operator")
    assert by_test(viewer.get(f"/incidents/{incident_id}").text, "silence") == []
    page = operator.get(f"/incidents/{incident_id}")
    link = one(page.text, "silence").attrs["href"]
    assert link == f"/notify/silences/new?incident={incident_id}"
    assert by_test(page.text, "incident-silenced") == []
    form = operator.get(link)
    shown = one(form.text, "silence-matchers").text  # whitespace collapsed: one line per matcher
    lines = sorted(matcher_text(Matcher(name, "=", value)) for name, value in labels.items())
    assert shown == " ".join(lines)
    text = "\n".join(lines)
    comment = one(form.text, "silence-comment").attrs["value"]
    made = operator.post(
        "/notify/silences",
        {"matchers": text, "duration": "1h", "comment": comment, "incident_id": incident_id},
    )
    assert made.status_code == 200 and "HX-Redirect" in made.headers, made.text
    shown = one(operator.get(f"/incidents/{incident_id}").text, "incident-silenced")
    with site.store.read() as conn:
        (silence,) = notify_config.list_silences(conn, acme, state="active", now=NOW)
    assert shown.attrs["data-silence-id"] == silence.id and silence.incident_id == incident_id
    assert {(m.name, m.op, m.value) for m in silence.matchers} == {(k, "=", v) for k, v in labels.items()}
    assert operator.get("/notify/silences/new?incident=no-such-incident").status_code == 404


def test_a_dead_delivery_is_listed_with_its_error_and_retried(site: Site, acme: str, other: str) -> None:
    admin = _browser(site, acme, "admin")
    channel_id = admin.create_channel("hook", "webhook", {"settings.url": "http://127.0.0.1:9/h"})
    dead = dead_delivery(site.store, acme, channel_id, NOW - 60, error="HTTP 400 from 127.0.0.1: bad")
    theirs = dead_delivery(site.store, other, channel_id, NOW - 50)
    operator = _browser(site, acme, "operator")
    listed = operator.get("/notify/deliveries", params={"status": "dead"})
    (row,) = by_test(listed.text, "delivery-row")
    assert row.attrs["data-delivery-id"] == dead and "HTTP 400 from 127.0.0.1: bad" in row.text
    assert theirs not in listed.text
    detail = operator.get(f"/notify/deliveries/{dead}")
    assert [a.attrs["data-outcome"] for a in by_test(detail.text, "attempt-row")] == ["failed"]
    assert operator.get(f"/notify/deliveries/{theirs}").status_code == 404
    retried = operator.post(f"/notify/deliveries/{dead}/retry", {})
    assert one(retried.text, "delivery-row").attrs["data-status"] == "pending"
    assert retried.headers.get("HX-Trigger") == "notify-retried"
    delivered = dead_delivery(site.store, acme, channel_id, NOW - 40, status="delivered")
    refused = operator.post(f"/notify/deliveries/{delivered}/retry", {})
    assert "only a dead delivery" in one(refused.text, "delivery-error").text
    assert "HX-Trigger" not in refused.headers
    viewer = _browser(site, acme, "viewer")
    assert viewer.post(f"/notify/deliveries/{dead}/retry", {}).status_code == 403


def test_the_inbox_counts_and_marks_read_per_user(site: Site, acme: str) -> None:
    alice, bob = _browser(site, acme, "viewer"), _browser(site, acme, "operator")
    for title in ("one", "two", "three"):
        alice.inbox_item(title)
    bob.inbox_item("for bob")
    assert one(alice.get("/inbox/count").text, "inbox-count").attrs["data-count"] == "3"
    page = alice.get("/inbox")
    assert [t.text for t in by_test(page.text, "inbox-title")] == ["three", "two", "one"]
    first = by_test(page.text, "inbox-row")[0].attrs["data-inbox-id"]
    bobs = by_test(bob.get("/inbox").text, "inbox-row")[0].attrs["data-inbox-id"]
    marked = alice.post("/inbox/read", {"id": [first, bobs]})  # bob's id is left alone
    assert marked.headers["HX-Trigger"] == "inbox-changed"
    assert one(marked.text, "inbox-unread").text == "2 unread"
    assert one(bob.get("/inbox/count").text, "inbox-count").attrs["data-count"] == "1"
    alice.post("/inbox/read", {})
    assert by_test(alice.get("/inbox/count").text, "inbox-count") == []
    assert [r.attrs["class"] for r in by_test(alice.get("/inbox").text, "inbox-row")] == ["read"] * 3


def test_send_test_shows_the_receivers_answer_and_an_in_app_test_lands_in_the_inbox(
    site: Site, acme: str
) -> None:
    admin, operator = _browser(site, acme, "admin"), _browser(site, acme, "operator")
    with SlackStandIn() as slack:
        slack_id = admin.create_channel("ops", "slack", {"secrets.url": slack.webhook_url})
        sent = operator.post(f"/notify/channels/{slack_id}/test", {})
        assert one(sent.text, "test-outcome").attrs["data-outcome"] == "delivered"
        assert len(slack.wait_for(1)) == 1
        slack.fail_next(1, 404)  # the webhook was revoked: Slack's no_service
        refused = operator.post(f"/notify/channels/{slack_id}/test", {})
        assert one(refused.text, "test-outcome").attrs["data-outcome"] == "failed"
        assert "404" in refused.text and slack.webhook_url not in refused.text
        assert SECRET_TOKEN not in refused.text
    inapp = admin.create_channel("in-app", "inapp", {})
    tested = operator.post(f"/notify/channels/{inapp}/test", {})
    assert one(tested.text, "test-outcome").attrs["data-outcome"] == "delivered"
    assert tested.headers["HX-Trigger"] == "inbox-changed"  # the menu's badge re-asks
    assert one(operator.get("/inbox/count").text, "inbox-count").attrs["data-count"] == "1"
    assert by_test(admin.get("/inbox/count").text, "inbox-count") == []
    other = _browser(site, acme, "viewer")
    assert other.post(f"/notify/channels/{slack_id}/test", {}).status_code == 403
