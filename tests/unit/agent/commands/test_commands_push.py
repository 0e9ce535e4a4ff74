"""Push mode over real uvicorn and httpx, and pull mode through the same processor."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from command_harness import SECRET, Agent, marker_lines

from infragent import signing
from infragent.agent.push import create_push_app, process_pulled
from support.servers import serve


@pytest.fixture
def http(agent: Agent) -> Iterator[httpx.Client]:
    """The agent's push app under real uvicorn on a loopback port; a client pointed at it."""
    agent.clock.now = time.time()  # frozen at the real now: requests are signed and checked alike
    with serve(create_push_app(agent.processor)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _post(http: httpx.Client, headers: dict[str, str], body: bytes) -> httpx.Response:
    return http.post("/commands", content=body, headers={**headers, "content-type": "application/json"})


def test_push_runs_once_and_refuses_replays_forgeries_and_injection(agent: Agent, http: httpx.Client) -> None:
    headers, body = agent.signed("mark", {"name": "push"}, command_id="p-1")
    response = _post(http, headers, body)
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["command_id"] == "p-1"

    replay = _post(http, headers, body)
    assert (replay.status_code, replay.json()["reason"]) == (401, "replay")
    assert replay.json()["code"] == "replay"
    forged = _post(http, headers, body.replace(b"push", b"pwn1"))
    assert (forged.status_code, forged.json()["reason"]) == (401, "bad_signature")
    injected = _post(http, *agent.signed("mark", {"name": "$(id)"}))
    assert (injected.status_code, injected.json()["reason"]) == (422, "not_allowed")

    agent.clock.now += 1
    retry = _post(http, *agent.signed("mark", {"name": "push"}, command_id="p-1"))
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    assert marker_lines(agent.marker) == ["--name push"]
    assert agent.processor.refusal_counts() == {"replay": 1, "bad_signature": 1, "not_allowed": 1}
    assert http.get("/commands").status_code == 405


def test_push_refuses_oversized_bodies(agent: Agent, http: httpx.Client) -> None:
    body = b"x" * (agent.processor.max_body_bytes + 1)
    response = _post(http, signing.signed_headers(SECRET, "big", body, now=agent.clock()), body)
    assert (response.status_code, response.json()["reason"]) == (413, "body_too_large")
    assert agent.processor.refusals()[0].command_id == "big"


def test_pull_mode_uses_the_same_path_and_builds_the_report(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "pulled"}, command_id="q-1")
    pulled = process_pulled(agent.processor, headers, body)
    assert (pulled["command_id"], pulled["http_status"]) == ("q-1", 200)
    assert pulled["result"]["status"] == "ok"
    assert pulled["report"] == {
        "status": "ok",
        "output": "marked --name pulled\n",
        "exit_code": 0,
        "duration_ms": pulled["result"]["duration_ms"],
    }
    agent.clock.now += 1
    again = process_pulled(agent.processor, *agent.signed("mark", {"name": "pulled"}, command_id="q-1"))
    assert (again["http_status"], again["report"]["duplicate"]) == (200, True)
    assert marker_lines(agent.marker) == ["--name pulled"]


def test_pull_mode_reports_refusals_under_the_fetched_id(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "x"}, command_id="q-2")
    bad = process_pulled(agent.processor, {**headers, signing.HEADER_SIGNATURE: "v1,AAAA"}, body)
    assert (bad["command_id"], bad["http_status"], bad["result"]["reason"]) == ("q-2", 401, "bad_signature")
    assert bad["report"]["status"] == "rejected"
    assert not agent.marker.exists()


def test_pull_mode_reports_nothing_while_the_same_id_is_still_running(agent: Agent) -> None:
    agent.ledger.begin("q-3", agent.clock(), "mark")  # another thread is running it right now
    pulled = process_pulled(agent.processor, *agent.signed("mark", {"name": "x"}, command_id="q-3"))
    assert (pulled["http_status"], pulled["result"]["status"], pulled["report"]) == (202, "running", None)
    assert not agent.marker.exists()
