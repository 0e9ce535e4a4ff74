"""Scenario 5: an operator runs an allowlisted action from the host page and sees its output.

The host's agent is a push agent whose signed webhook (the SDK's app on 127.0.0.1) runs nothing:
``restart`` answers ``restarted <name>``. Everything else is real: the page's form, the confirm
step, the server's checks and signed delivery, the status coming back live.
"""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from support.browser import LiveServer, add_session, htmx_swap, open_live, until

pytestmark = pytest.mark.browser


def test_an_operator_runs_an_allowlisted_action_and_sees_its_output(page: Page, server: LiveServer) -> None:
    host = f"app-{uuid.uuid4().hex[:6]}"
    with server.push_tenant(host) as recv:
        server.ingest(recv.reg.api_key, host, time.time())
        add_session(page.context, server.base_url, server.session(recv.reg.client.id, "operator"))
        open_live(page, f"/hosts/{host}")

        form = page.locator("[data-test=action-form]")
        expect(form).to_be_visible()
        # choosing the action swaps in its parameter inputs: type only into the swapped-in ones
        with htmx_swap(page, "#remote-1-params"):
            form.locator("[data-test=action-select]").select_option("restart")
        form.locator("input[name=param-name]").fill("web")
        page.locator("[data-test=action-run]").click()
        # nothing runs before the confirmation, which states exactly what will run
        confirm = page.locator("[data-test=action-confirm]")
        expect(confirm).to_be_visible()
        expect(page.locator("[data-test=action-confirm-form]")).to_contain_text("name=web")
        assert recv.total == 0
        confirm.click()

        expect(page.locator("[data-test=command-status]")).to_have_text("done", timeout=10_000)
        expect(page.locator("[data-test=command-output]")).to_contain_text("restarted web")
        until(lambda: recv.total == 1, what="the receiver to have run the restart once")
