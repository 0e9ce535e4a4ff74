"""A process SIGKILLed between the commit of a delivery's claim and its send (or between the send
and its record), on both databases: another notifier takes the delivery over when the lease
expires and the receiver counts the notification once (by ``webhook-id``).

The crashing process is a real child process running the production notifier with a failpoint
(``notify/failpoints.py``); the survivor is this test's notifier on the same database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    SECRET,
    Clock,
    delivery_rows,
    drive,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    webhook_channel,
)
from support.standins import WebhookReceiver

T0 = 1_700_000_000.0
CHILD = textwrap.dedent(
    """
    import sys
    from infragent.config import Settings
    from infragent.notify.service import build_notifier
    from infragent.store.sql import open_store

    url, now, point = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    store = open_store(url)
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",), notify_lease_s=60.0)
    environ = {"INFRAGENT_FAILPOINTS": point + "=kill"}
    n = build_notifier(settings, store, clock=lambda: now, environ=environ, worker_id="doomed")
    n.run_once(now)
    n.worker.wait_idle(30)
    print("the failpoint did not fire")
    """
)


def _crash(db_url: str, now: float, point: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, repr(now), point],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


@pytest.mark.parametrize("point", ["notify.before_send", "notify.after_send"])
def test_a_delivery_whose_process_died_is_sent_by_another_after_the_lease(
    db_url: str, store: SqlStore, tenant: str, point: str
) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        open_incident(store, tenant, T0)
        _crash(db_url, T0, point)
        [claimed] = delivery_rows(store, tenant)
        assert claimed.status == "sending" and claimed.lease_owner == "doomed" and claimed.attempts == 1
        sent_before = 1 if point == "notify.after_send" else 0
        assert len(hook.received) == sent_before
        with notifier(store, pipeline_settings(), clock, worker_id="survivor") as n:
            drive(n, T0 + 59)
            assert len(hook.received) == sent_before
            drive(n, T0 + 60)
            hook.wait_for(sent_before + 1)
            drive(n, T0 + 600)
        [row] = delivery_rows(store, tenant)
        assert row.status == "delivered" and row.attempts == 2
        assert hook.unique_ids == [row.id]
        assert len(hook.received) == sent_before + 1
