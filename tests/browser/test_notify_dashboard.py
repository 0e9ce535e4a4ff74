"""Notifications from the dashboard, in Chromium against a real server whose Notifier runs (issue 13):

1. a Slack channel created on ``/notify/channels`` and tested: the Slack stand-in received one
   message and the row says ``delivered``;
2. an incident silenced from its page: the next notification of its group is held back (a
   ``suppressed`` delivery ``silence <id>`` on ``/notify/deliveries``), the stand-in gets nothing new;
3. a dead letter (the stand-in answered 400) retried from ``/notify/deliveries`` once the receiver
   is fixed: it arrives (exactly one more request) and its row turns ``delivered`` on screen;
4. the menu's unread badge counts an in-app notification live, and "Mark all read" clears it.

Incidents are opened through the real events API. The server's responder acts on them too: it
escalates one whose host has no agent, at its own pace. So that its ``escalated`` notifications
cannot land in a count, each tenant's route tree notifies on ``firing`` and ``resolved`` only
(``notify_on``); counts are taken once the tenant's deliveries have settled (none pending or sending).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from infragent.store import notify_config, notify_reads
from support.browser import LiveServer, add_session, live_server, mark_loaded, open_live, still_loaded, until
from support.standins import SlackStandIn

pytestmark = pytest.mark.browser

#: how long the pipeline may take to route, flush and send (group_wait 0, ticks of 0.2 s)
SETTLE_S = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The browser tests' server with the notifier quick: groups flush at once and again after 1 s."""
    tmp: Path = tmp_path_factory.mktemp("notify-browser")
    with live_server(
        tmp,
        notify_tick_s=0.2,
        notify_group_wait_s=0,
        notify_group_interval_s=1,
        notify_repeat_interval_s=3600,
    ) as live:
        yield live


def _channel(server: LiveServer, client_id: str, name: str, kind: str, **values: object) -> str:
    """A channel of ``kind`` that the tenant's route tree sends firing and resolved notifications to."""
    settings, secrets = values.get("settings", {}), values.get("secrets", {})
    assert isinstance(settings, dict) and isinstance(secrets, dict)
    with server.store.write() as conn:
        made = notify_config.create_channel(
            conn,
            client_id,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            settings=settings,
            secrets=secrets,
            actor="test",
            now=time.time(),
        )
        tree = {"receivers": [name], "notify_on": ["firing", "resolved"]}
        notify_config.put_routing(conn, client_id, tree, expected_version=0, actor="test", now=time.time())
    return made.id


def _deliveries(
    server: LiveServer, client_id: str, status: str | None = None
) -> list[notify_reads.DeliveryView]:
    with server.store.read() as conn:
        views, _ = notify_reads.list_deliveries(conn, client_id, status=status, limit=200)
    return views


def _settled(server: LiveServer, client_id: str) -> bool:
    return not [d for d in _deliveries(server, client_id) if d.status in ("pending", "sending")]


def test_a_slack_channel_made_on_the_page_gets_its_test_message(page: Page, server: LiveServer) -> None:
    reg = server.tenant()
    add_session(page.context, server.base_url, server.session(reg.client.id, "admin"))
    with SlackStandIn() as slack:
        response = page.goto("/notify/channels")
        assert response is not None and response.status == 200
        form = page.locator("[data-test=channel-create]")
        form.locator("[data-test=channel-name]").fill("ops-slack")
        form.locator("[data-test=channel-kind]").select_option("webhook")
        expect(form.locator("input[name='settings.url']")).to_be_visible()  # the kind's fields swapped in
        form.locator("[data-test=channel-kind]").select_option("slack")
        secret_input = form.locator("input[name='secrets.url']")
        expect(secret_input).to_have_attribute("type", "password")
        secret_input.fill(slack.webhook_url)
        page.locator("[data-test=channel-create-submit]").click()
        row = page.locator("[data-test=channel-row][data-channel-name=ops-slack]")
        expect(row).to_be_visible()
        expect(row.locator("[data-test=channel-secrets]")).to_contain_text("url")
        assert slack.webhook_url not in page.content()

        row.locator("[data-test=channel-test]").click()
        outcome = row.locator("[data-test=test-outcome]")
        expect(outcome).to_have_text("delivered")
        slack.wait_for(1)
        assert len(slack.received) == 1
        assert slack.webhook_url not in page.content()


def test_silencing_an_incident_on_its_page_holds_back_its_next_notification(
    page: Page, server: LiveServer
) -> None:
    reg = server.tenant()
    node = f"web-{uuid.uuid4().hex[:6]}"
    with SlackStandIn() as slack:
        _channel(server, reg.client.id, "ops-slack", "slack", secrets={"url": slack.webhook_url})
        incident_id = server.report(reg.api_key, node)
        slack.wait_for(1)  # the group's first notification (firing)
        until(lambda: _settled(server, reg.client.id), SETTLE_S, "the deliveries to settle")
        before = len(slack.received)

        add_session(page.context, server.base_url, server.session(reg.client.id, "operator"))
        page.goto(f"/incidents/{incident_id}")
        page.locator("[data-test=silence]").click()
        expect(page.locator("[data-test=silence-matchers]")).to_contain_text(f'host="{node}"')
        page.locator("[data-test=silence-submit]").click()
        expect(page).to_have_url(re.compile(r"/notify/silences\?created="))
        made = page.locator("[data-test=silence-row][data-state=active]")
        expect(made).to_have_count(1)
        silence_id = made.get_attribute("data-silence-id")
        assert silence_id

        page.goto(f"/incidents/{incident_id}")
        expect(page.locator("[data-test=incident-silenced]")).to_have_attribute("data-silence-id", silence_id)
        page.locator("[data-test=resolve]").click()  # the group's next notification: resolved
        expect(page.locator("[data-test=incident-status]")).to_have_text("resolved")

        until(
            lambda: bool(_deliveries(server, reg.client.id, "suppressed")), SETTLE_S, "a suppressed delivery"
        )
        page.goto("/notify/deliveries?status=suppressed")
        row = page.locator("[data-test=delivery-row][data-status=suppressed]")
        expect(row).to_have_count(1)
        expect(row.locator("[data-test=delivery-suppressed-by]")).to_have_text(f"silence {silence_id}")
        until(lambda: _settled(server, reg.client.id), SETTLE_S, "the deliveries to settle")
        assert len(slack.received) == before, "the silenced notification reached Slack"


def test_a_dead_letter_retried_on_the_page_arrives_once_the_receiver_is_fixed(
    page: Page, server: LiveServer
) -> None:
    reg = server.tenant()
    with SlackStandIn() as slack:
        _channel(server, reg.client.id, "ops-slack", "slack", secrets={"url": slack.webhook_url})
        slack.fail_next(1000, 400)  # invalid_payload: final at once, no retry
        server.report(reg.api_key, f"web-{uuid.uuid4().hex[:6]}")
        until(lambda: bool(_deliveries(server, reg.client.id, "dead")), SETTLE_S, "a dead delivery")
        until(lambda: _settled(server, reg.client.id), SETTLE_S, "the deliveries to settle")
        dead = _deliveries(server, reg.client.id, "dead")[-1]
        slack.reset()  # fixed: answers ok again, and counts from zero

        add_session(page.context, server.base_url, server.session(reg.client.id, "operator"))
        page.goto("/notify/deliveries")
        row = page.locator(f"[data-test=delivery-row][data-delivery-id='{dead.id}']")
        expect(row).to_have_attribute("data-status", "dead")
        expect(row.locator("[data-test=delivery-why]")).to_contain_text("400")
        row.locator("[data-test=delivery-retry]").click()
        expect(row).to_have_attribute("data-status", "delivered", timeout=SETTLE_S * 1000)
        slack.wait_for(1)
        until(lambda: _settled(server, reg.client.id), SETTLE_S, "the deliveries to settle")
        assert len(slack.received) == 1
        expect(row.locator("[data-test=delivery-retry]")).to_have_count(0)


def test_the_unread_badge_counts_an_in_app_notification_live(page: Page, server: LiveServer) -> None:
    reg = server.tenant()
    _channel(server, reg.client.id, "in-app", "inapp", settings={"roles": ["viewer"]})
    viewer = server.session(reg.client.id, "viewer")
    add_session(page.context, server.base_url, viewer)
    open_live(page, "/incidents")
    mark = mark_loaded(page)
    badge = page.locator("[data-test=inbox-badge]")
    expect(badge.locator("[data-test=inbox-count]")).to_have_count(0)

    server.report(reg.api_key, f"web-{uuid.uuid4().hex[:6]}")
    count = badge.locator("[data-test=inbox-count]")
    expect(count).to_have_text("1")  # live: no reload (the stream's notification event)
    assert still_loaded(page, mark), "the page reloaded instead of updating its badge live"
    until(lambda: _settled(server, reg.client.id), SETTLE_S, "the deliveries to settle")
    page.locator("[data-test=nav-inbox]").click()
    expect(page.locator("[data-test=inbox-row]")).to_have_count(1)
    expect(count).to_have_text("1")  # the new page's badge has asked for its count
    page.locator("[data-test=inbox-read-all]").click()
    expect(page.locator("[data-test=inbox-unread]")).to_have_text("0 unread")
    expect(count).to_have_count(0)  # the badge asked again: nothing unread
    with page.expect_response(lambda r: r.url.endswith("/inbox/count")) as asked:
        page.reload()
    assert asked.value.status == 200  # the reloaded page's badge asked: nothing unread
    expect(page.locator("[data-test=inbox-row].read")).to_have_count(1)
    expect(count).to_have_count(0)
