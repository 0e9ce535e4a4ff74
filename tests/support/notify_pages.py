"""What the notification page tests share: a signed-in person posting the pages' forms the way
htmx does (``Browser``), a Slack webhook URL whose last part is a recognisable secret, and a dead
delivery written as the delivery worker leaves one (row + failed attempt), for the deliveries page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from infragent.store import notify_reads
from infragent.store.notify_schema import notify_attempts, notify_deliveries
from infragent.store.sql import SqlStore
from support.dom import by_test
from support.web import SignedInUser, Site

#: the credential part of the Slack URLs the tests use: no page may ever show it
SECRET_TOKEN = "sEcReTtOkEnNeVeRsHoWn1234"


def slack_url(base: str) -> str:
    """An incoming-webhook URL on ``base`` (a stand-in, or an address the policy refuses)."""
    return f"{base}/services/T000/B000/{SECRET_TOKEN}"


@dataclass
class Browser:
    """One person's browser on the site: their cookie on every request, the CSRF header and
    ``HX-Request`` on posts (what the base template's ``hx-headers`` and htmx send)."""

    site: Site
    user: SignedInUser

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self.site.http.get(path, params=params, headers=self.user.cookie_only)

    def post(self, path: str, data: dict[str, Any], htmx: bool = True) -> httpx.Response:
        headers = self.user.browser_headers | ({"HX-Request": "true"} if htmx else {})
        return self.site.http.post(path, data=data, headers=headers)

    def create_channel(self, name: str, kind: str, fields: dict[str, str]) -> str:
        """Create a channel through the page; returns its id."""
        r = self.post("/notify/channels", {"name": name, "kind": kind, **fields})
        assert by_test(r.text, "channel-created"), r.text
        rows = [e for e in by_test(r.text, "channel-row") if e.attrs["data-channel-name"] == name]
        assert len(rows) == 1, r.text
        return rows[0].attrs["data-channel-id"]

    def inbox_item(self, title: str, incident_id: str | None = None) -> int:
        """An in-app notification for this person, as an in-app delivery writes one."""
        with self.site.store.write() as conn:
            return notify_reads.inbox_add(
                conn,
                self.user.client_id,
                self.user.user_id,
                delivery_id=str(uuid.uuid4()),
                kind="firing",
                title=title,
                body="",
                incident_id=incident_id,
                now=self.site.svc.clock(),
            )


def dead_delivery(
    store: SqlStore,
    client_id: str,
    channel_id: str,
    at: float,
    *,
    error: str = "HTTP 400 from 127.0.0.1: invalid_payload",
    title: str = "web-1 down",
    status: str = "dead",
) -> str:
    """A delivery the worker gave up on: one failed attempt (HTTP 400), status ``dead`` (or
    ``status``, for a delivery in another state with the same history)."""
    delivery_id = str(uuid.uuid4())
    message = {"id": delivery_id, "client_id": client_id, "kind": "firing", "title": title, "incidents": []}
    with store.write() as conn:
        conn.execute(
            notify_deliveries.insert().values(
                id=delivery_id,
                client_id=client_id,
                channel_id=channel_id,
                kind="firing",
                message=message,
                status=status,
                attempts=1,
                created_at=at,
                next_attempt_at=at,
                deadline_at=at + 60,
                last_error=error,
                last_status_code=400,
                cause=f"test:{delivery_id}",
            )
        )
        conn.execute(
            notify_attempts.insert().values(
                delivery_id=delivery_id,
                client_id=client_id,
                n=1,
                started_at=at,
                duration_s=0.01,
                outcome="failed",
                status_code=400,
                error=error,
                worker="test",
            )
        )
    return delivery_id
