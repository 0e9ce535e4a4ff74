"""A responder process SIGKILLed mid-way: its agent is re-claimed after the lease and handled once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from infragent.model import Severity
from infragent.store.sql import SqlStore
from support.databases import audit_entries, get_event_detail, insert_event, list_events, pending_count
from support.llm_standin import Answer, Delay, LlmStandIn
from support.responders import Receiver, register_node

pytestmark = pytest.mark.e2e
NODE = "host-1/web"
GOOD = json.dumps({"action": "restart", "target": "web", "params": {"name": "web"}, "rationale": "down"})


@contextmanager
def responder_process(db_url: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    environ.update(
        {
            "INFRAGENT_DATABASE_URL": db_url,
            "INFRAGENT_LEASE_S": "2",
            "INFRAGENT_SWEEP_INTERVAL_S": "30",
            "INFRAGENT_COOLDOWN_S": "0",
            "INFRAGENT_LOG_LEVEL": "warning",
            "INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver runs on this machine
            **env,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "infragent", "responder"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)
        if proc.stderr:
            proc.stderr.close()


def _until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _audit_kinds(store: SqlStore, recv: Receiver) -> list[str]:
    return [a.kind for a in audit_entries(store, recv.reg.client.id)]


def test_killed_while_deciding(store: SqlStore, receiver: Receiver, db_url: str) -> None:
    register_node(store, receiver.reg, NODE)
    with LlmStandIn(api_key="k") as llm:
        llm.script(Delay(60.0), Answer(GOOD))
        llm_env = {
            "INFRAGENT_LLM_PROVIDER": "openai",
            "INFRAGENT_LLM_BASE_URL": llm.openai_base_url,
            "INFRAGENT_LLM_MODEL": "m",
            "INFRAGENT_LLM_API_KEY": "k",
            "INFRAGENT_LLM_TIMEOUT_S": "90",
        }
        insert_event(
            store,
            receiver.reg.client.id,
            type="disk_full",
            service="web",
            severity=Severity.CRITICAL,
            data={},
            node_id=NODE,
            now=time.time(),
        )
        with responder_process(db_url, **llm_env) as first:
            _until(lambda: len(llm.requests) == 1)  # stuck waiting for the model
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert pending_count(store) == 1
        with responder_process(db_url, **llm_env):
            _until(lambda: pending_count(store) == 0)
        assert len(llm.requests) == 2
    assert receiver.total == 1
    kinds = _audit_kinds(store, receiver)
    assert kinds.count("decision.made") == 1 and kinds.count("event.processed") == 1


def test_killed_after_sending_does_not_run_the_action_twice(
    store: SqlStore, receiver: Receiver, db_url: str
) -> None:
    register_node(store, receiver.reg, NODE)
    receiver.gate = threading.Event()  # the app is slow to answer the restart
    insert_event(
        store,
        receiver.reg.client.id,
        type="app_down",
        service="web",
        severity=Severity.CRITICAL,
        data={},
        node_id=NODE,
        now=time.time(),
    )
    with responder_process(db_url) as first:
        assert receiver.entered.wait(30)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    receiver.gate.set()
    _until(lambda: receiver.total == 1)
    with responder_process(db_url):
        _until(lambda: pending_count(store) == 0)
    assert receiver.total == 1
    kinds = _audit_kinds(store, receiver)
    assert kinds.count("decision.made") == 1 and kinds.count("event.processed") == 1
    assert kinds.count("command.sent") == 2  # the same command id, re-sent by the second responder
    [event] = list_events(store, receiver.reg.client.id)
    detail = get_event_detail(store, receiver.reg.client.id, event.id)
    assert detail is not None and detail.command is not None
    # The re-send is signed afresh: the app answers with the stored result of its one run.
    assert (detail.command["status"], detail.command["output"]) == ("done", "restarted web")
