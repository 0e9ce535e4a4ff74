"""Secrets of channels never appear in API answers, dashboard pages, logs, the audit log or the LLM
prompt.

A channel of every kind is created through the API with a distinctive secret (a webhook signing
secret, the Slack, Discord and Teams webhook URLs, a Slack bot token, a PagerDuty routing key, an
SMTP password, apprise URLs), each pointing at a local stand-in of its vendor. The test then does
what people and the server do with channels: list, read, change, test (receivers answering,
refusing, down), route, notify an incident through the real pipeline with some receivers failing
so errors are logged and deliveries die, read the deliveries and their attempts, retry a dead one,
delete; the dashboard's notification pages are read as an admin. Every answer body and page,
every log record of every logger (at DEBUG, ``httpx``, ``httpcore``, ``urllib3`` and ``apprise``
included), the tenant's whole audit log and the responder's LLM prompt for an incident of the
tenant are then searched for every secret and every secret URL path.

Why grep rather than check each field: a leak comes from where nobody thought to look (a library's
debug line, an error quoting a URL, an audit entry of a PATCH), and only a search of everything
finds those.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from infragent.config import Settings
from infragent.responder.prompt import SYSTEM, build_user_prompt
from infragent.store import audit
from infragent.store.sql import SqlStore
from infragent.store.workqueue import SqlWorkQueue
from support.dashboard_data import incident
from support.databases import register_agent
from support.notify_api import Tenant, make_tenant
from support.smtp_sink import SmtpSink
from support.standins import DiscordStandIn, PagerDutyStandIn, SlackStandIn, TeamsStandIn, WebhookReceiver
from support.standins.base import Received, Reply, StandIn
from support.web import Site, serve_site

API = "/api/v1/notify"
HOOK_SECRET = "whsec_" + base64.b64encode(b"leak-test-webhook-signing-key-0001").decode()
SLACK_HOOK_TOKEN = "leakslackhooktoken7b3e"
SLACK_BOT_TOKEN = "xoxb-leak-bot-token-5c2e"
SLACK_BOT_ROTATED = "xoxb-leak-rotated-token-a4d1"
DISCORD_TOKEN = "leak-discord-token-77aa"
TEAMS_SIG = "leakteamssig31f0"
PD_KEY = "LEAKpdROUTINGkey0123456789abcdef"
SMTP_USER = "leakuser"
SMTP_PASSWORD = "leak-smtp-password-4e1"
APPRISE_PASSWORD = "leak-apprise-pass-92"
APPRISE_PATH = "leak-apprise-path-6d"
LOGGERS = ("", "httpx", "httpcore", "urllib3", "apprise", "infragent", "uvicorn", "smtplib", "mail.log")


class OkReceiver(StandIn):
    """Answers 200 to anything: the apprise ``json://`` target."""

    name = "apprise json receiver"

    def answer(self, request: Received) -> Reply:
        return Reply.json(200, {"ok": True})


@dataclass
class Vendors:
    slack: SlackStandIn
    discord: DiscordStandIn
    teams: TeamsStandIn
    pagerduty: PagerDutyStandIn
    hook: WebhookReceiver
    smtp: SmtpSink
    apprise: OkReceiver

    @property
    def apprise_url(self) -> str:
        port = urlsplit(self.apprise.url).port
        return f"json://{SMTP_USER}:{APPRISE_PASSWORD}@127.0.0.1:{port}/{APPRISE_PATH}"

    def secrets(self) -> list[str]:
        """Every secret value, the secret parts of every URL, and the URLs whole."""
        teams = urlsplit(self.teams.webhook_url)
        values = [
            HOOK_SECRET,
            HOOK_SECRET.removeprefix("whsec_"),
            SLACK_HOOK_TOKEN,
            urlsplit(self.slack.webhook_url).path,
            self.slack.webhook_url,
            SLACK_BOT_TOKEN,
            SLACK_BOT_ROTATED,
            DISCORD_TOKEN,
            urlsplit(self.discord.webhook_url).path,
            self.discord.webhook_url,
            TEAMS_SIG,
            teams.path,
            teams.query,
            self.teams.webhook_url,
            PD_KEY,
            SMTP_PASSWORD,
            base64.b64encode(SMTP_PASSWORD.encode()).decode(),
            base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode(),
            APPRISE_PASSWORD,
            APPRISE_PATH,
            self.apprise_url,
        ]
        return sorted(set(values), key=len, reverse=True)


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with (
        SlackStandIn(token=SLACK_BOT_TOKEN, webhook_token=SLACK_HOOK_TOKEN) as slack,
        DiscordStandIn(token=DISCORD_TOKEN) as discord,
        TeamsStandIn(sig=TEAMS_SIG) as teams,
        PagerDutyStandIn(routing_keys=(PD_KEY,)) as pagerduty,
        WebhookReceiver(HOOK_SECRET) as hook,
        SmtpSink(users={SMTP_USER: SMTP_PASSWORD}) as smtp,
        OkReceiver() as apprise,
    ):
        yield Vendors(slack, discord, teams, pagerduty, hook, smtp, apprise)


@dataclass
class Recorder:
    """The site's HTTP client, keeping every answer for the search at the end."""

    site: Site
    tenant: Tenant
    answers: list[httpx.Response] = field(default_factory=list)

    def call(self, method: str, path: str, scope: str = "admin", **kw: Any) -> httpx.Response:
        url = path if path.startswith("/api/") else f"{API}{path}"
        r = self.site.http.request(method, url, headers=self.tenant.auth(scope), **kw)
        self.answers.append(r)
        return r


def _channels(v: Vendors) -> list[dict[str, Any]]:
    return [
        {
            "name": "hook",
            "kind": "webhook",
            "settings": {"url": v.hook.hook_url},
            "secrets": {"secret": HOOK_SECRET},
        },
        {"name": "slack", "kind": "slack", "secrets": {"url": v.slack.webhook_url}},
        {
            "name": "slack-bot",
            "kind": "slack_bot",
            "settings": {"channel": "C0123456789", "api_url": v.slack.api_url},
            "secrets": {"token": SLACK_BOT_TOKEN},
        },
        {"name": "discord", "kind": "discord", "secrets": {"url": v.discord.webhook_url}},
        {"name": "teams", "kind": "teams", "secrets": {"url": v.teams.webhook_url}},
        {
            "name": "pager",
            "kind": "pagerduty",
            "settings": {"url": v.pagerduty.enqueue_url},
            "secrets": {"routing_key": PD_KEY},
        },
        {
            "name": "mail",
            "kind": "email",
            "settings": {
                "host": v.smtp.host,
                "port": v.smtp.port,
                "security": "none",
                "username": SMTP_USER,
                "from": "infragent@example.com",
                "to": ["ops@example.com"],
            },
            "secrets": {"password": SMTP_PASSWORD},
        },
        {"name": "inbox", "kind": "inapp"},
        {"name": "phones", "kind": "apprise", "secrets": {"urls": [v.apprise_url]}},
    ]


def _create_test_and_change(api: Recorder, v: Vendors) -> dict[str, str]:
    """Every kind created, read, changed and tested (answering, refusing, down); name → id."""
    ids: dict[str, str] = {}
    for body in _channels(v):
        created = api.call("POST", "/channels", json=body)
        assert created.status_code == 201, created.text
        ids[body["name"]] = created.json()["id"]
    listed = api.call("GET", "/channels", scope="read")
    assert sorted(c["name"] for c in listed.json()["channels"]) == sorted(ids)
    for name, cid in ids.items():
        one = api.call("GET", f"/channels/{cid}", scope="read")
        assert one.status_code == 200 and one.json()["name"] == name
        tested = api.call("POST", f"/channels/{cid}/test", scope="operate")
        assert tested.status_code == 200, tested.text
        if name != "inbox":  # an API key has no inbox
            assert tested.json()["outcome"] == "delivered", (name, tested.json())

    # receivers refusing, failing and down: every error path of the adapters
    v.discord.fail_next(1, 400)
    v.teams.fail_next(1, 500)
    v.pagerduty.fail_next(1, 429, retry_after=3)
    v.smtp.fail_next(1, 535, at="MAIL")
    v.hook.down()
    for name in ("discord", "teams", "pager", "mail", "hook"):
        refused = api.call("POST", f"/channels/{ids[name]}/test", scope="operate")
        assert refused.status_code == 200 and refused.json()["outcome"] != "delivered", refused.text
    v.hook.up()

    # a rotated bot token the stand-in does not know: invalid_auth, final
    rotated = api.call(
        "PATCH", f"/channels/{ids['slack-bot']}", json={"secrets": {"token": SLACK_BOT_ROTATED}}
    )
    assert rotated.status_code == 200 and rotated.json()["secrets_set"] == ["token"]
    bad_auth = api.call("POST", f"/channels/{ids['slack-bot']}/test", scope="operate")
    assert bad_auth.json()["outcome"] == "failed" and "invalid_auth" in (bad_auth.json()["error"] or "")
    renamed = api.call("PATCH", f"/channels/{ids['slack']}", json={"name": "slack-2", "enabled": True})
    assert renamed.status_code == 200
    # a refused change names the field and echoes nothing
    refused_url = api.call(
        "PATCH", f"/channels/{ids['discord']}", json={"secrets": {"url": "ftp://x/" + DISCORD_TOKEN}}
    )
    assert refused_url.status_code == 422
    return ids


def _search(haystacks: dict[str, str], secrets: list[str]) -> list[tuple[str, str]]:
    return [(where, s) for where, text in haystacks.items() for s in secrets if s in text]


def _prompt(store: SqlStore, client_id: str, now: float) -> str:
    """The responder's LLM prompt for the tenant's incident, built as the responder builds it."""
    item = SqlWorkQueue(store).claim_next("leak-test", 60.0, now)
    assert item is not None and item.client_id == client_id
    allowed = {a.name: a for a in item.actions}
    return SYSTEM + "\n" + build_user_prompt(item.node_id, item.events, allowed)


def _deliver_and_retry(api: Recorder, v: Vendors, store: SqlStore) -> None:
    """An incident notified through the real pipeline to every channel, acknowledged and resolved,
    with receivers refusing (dead at once), failing once (retried), and one down until its
    deliveries die; the deliveries read one by one; a dead one retried once its receiver is back."""
    tenant = api.tenant.client_id
    v.discord.fail_next(1000, 400)  # refused every time: dead at once, an error quoted
    v.teams.fail_next(1, 500)
    v.pagerduty.fail_next(1, 429, retry_after=1)
    v.smtp.fail_next(1, 451)
    v.hook.down()  # the slack bot's rotated token is refused too: invalid_auth
    opened = incident(store, tenant, time.time(), node="web-1")
    _settled(api, at_least=9)
    assert api.call("POST", f"/api/v1/incidents/{opened}/acknowledge", scope="operate").status_code == 200
    _settled(api, at_least=18)
    assert api.call("POST", f"/api/v1/incidents/{opened}/resolve", scope="operate").status_code == 200
    views = _settled(api, at_least=27)

    by_status = {d["status"] for d in views}
    assert {"delivered", "dead"} <= by_status, by_status
    for d in views:
        one = api.call("GET", f"/deliveries/{d['id']}", scope="read")
        assert one.status_code == 200 and one.json()["attempts_made"], one.text
    dead = api.call("GET", "/dead-letters", scope="read").json()["deliveries"]
    assert {d["channel_name"] for d in dead} >= {"discord", "slack-bot", "hook"}
    v.hook.up()
    hook_dead = next(d for d in dead if d["channel_name"] == "hook")
    again = api.call("POST", f"/deliveries/{hook_dead['id']}/retry", scope="operate")
    assert again.status_code == 200, again.text
    _settled(api, at_least=27)
    assert api.call("GET", f"/deliveries/{hook_dead['id']}", scope="read").json()["status"] == "delivered"


def _pages(api: Recorder, ids: dict[str, str]) -> None:
    """The dashboard's notification pages as a signed-in admin sees them (and the inbox)."""
    admin = api.site.person(api.tenant.client_id, "admin")
    deliveries = api.call("GET", "/deliveries", scope="read", params={"limit": 200}).json()["deliveries"]
    paths = ["/notify/channels", "/notify/routes", "/notify/silences", "/notify/deliveries", "/inbox"]
    paths += [f"/notify/channels/{cid}" for cid in ids.values()]
    paths += [f"/notify/deliveries/{d['id']}" for d in deliveries]
    for path in paths:
        page = api.site.http.get(path, headers=admin.browser_headers)
        assert page.status_code == 200, (path, page.status_code)
        api.answers.append(page)


def _settled(api: Recorder, at_least: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The tenant's deliveries once there are ``at_least`` and none is pending or being sent."""
    deadline = time.monotonic() + timeout_s
    views: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = api.site.http.get(f"{API}/deliveries", params={"limit": 200}, headers=api.tenant.auth("read"))
        views = r.json()["deliveries"]
        if len(views) >= at_least and all(d["status"] not in ("pending", "sending") for d in views):
            api.answers.append(r)
            return views
        time.sleep(0.05)
    raise AssertionError(f"deliveries not settled: {[(d['channel_name'], d['status']) for d in views]}")


def test_channel_secrets_appear_in_no_answer_log_audit_entry_or_prompt(
    store: SqlStore, vendors: Vendors, caplog: pytest.LogCaptureFixture
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    tenant = make_tenant(store, "Leaky")
    settings = Settings(
        webhook_allowed_networks=("127.0.0.0/8",),
        notify_group_wait_s=0.0,
        notify_group_interval_s=0.5,  # the resolution follows the opening this soon
        notify_backoff_base_s=0.05,
        notify_backoff_cap_s=0.2,
        notify_retry_for_s=2.0,
        notify_timeout_s=5.0,
    )
    with serve_site(store, settings) as site:
        api = Recorder(site, tenant)
        ids = _create_test_and_change(api, vendors)

        tree = {"receivers": [*sorted(n for n in ids if n != "slack"), "slack-2"], "group_by": ["..."]}
        put = api.call("PUT", "/routes", json=tree)
        assert put.status_code == 200, put.text
        api.call("GET", "/routes", scope="read")
        in_use = api.call("DELETE", f"/channels/{ids['teams']}")
        assert in_use.status_code == 409

        register_agent(
            store,
            tenant.client_id,
            "web-1",
            kind="agent",
            command_mode="pull",
            actions=[],
            labels={},
            now=1.0,
        )
        _deliver_and_retry(api, vendors, store)
        prompt = _prompt(store, tenant.client_id, time.time())
        _pages(api, ids)

        api.call("PUT", "/routes", json={"receivers": ["hook"]})
        gone = api.call("DELETE", f"/channels/{ids['teams']}")
        assert gone.status_code == 204, gone.text
        api.call("GET", "/deliveries", scope="read")

    with store.read() as conn:
        entries = audit.entries(conn, tenant.client_id)
    kinds = {e.kind for e in entries}
    assert {"notify.channel.created", "notify.delivery.dead", "notify.delivery.retried"} <= kinds, kinds
    audit_text = orjson.dumps([(e.kind, e.subject, e.detail) for e in entries]).decode()
    log_text = caplog.text + "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    haystacks = {"audit": audit_text, "logs": log_text, "prompt": prompt}
    haystacks |= {f"{r.request.method} {r.request.url.path} → {r.status_code}": r.text for r in api.answers}
    assert _search(haystacks, vendors.secrets()) == []
    # the logs were there to search: httpx's request lines name the host, and the failures were logged
    assert any(r.name == "httpx" and "127.0.0.1" in r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("infragent.notify") and "refused" in r.getMessage() for r in caplog.records)
