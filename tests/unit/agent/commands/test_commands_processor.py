"""The command pipeline end to end over real scripts: every refusal runs nothing and is recorded."""

from __future__ import annotations

import threading
import time

import pytest
from command_harness import SECRET, Agent, marker_lines

from infragent import signing
from infragent.agent.commands import CommandProcessor
from infragent.agent.ledger import DB_NAME, INTERRUPTED_OUTPUT, LazyLedger
from infragent.errors import ConfigError


def test_allowed_command_runs_and_reports_its_result(agent: Agent) -> None:
    status, result = agent.send("mark", {"name": "web-1"}, command_id="c-1")
    assert status == 200
    assert result["status"] == "ok"
    assert result["exit_code"] == 0
    assert result["output"].strip() == "marked --name web-1"
    assert result["command_id"] == "c-1"
    assert result["truncated"] is False
    assert isinstance(result["duration_ms"], int)
    assert marker_lines(agent.marker) == ["--name web-1"]
    assert agent.processor.refusals() == []


def test_replayed_message_is_refused_and_recorded(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "a"})
    assert agent.processor.handle(headers, body)[0] == 200
    agent.clock.now += 5
    status, result = agent.processor.handle(headers, body)
    assert status == 401
    assert result["reason"] == "replay"
    assert result["code"] == "replay"  # machine-readable, next to the human text in "output"
    assert marker_lines(agent.marker) == ["--name a"]
    assert agent.processor.refusal_counts() == {"replay": 1}


@pytest.mark.parametrize(("skew", "reason"), [(-301, "stale"), (301, "stale"), (-299, None)])
def test_timestamp_window(agent: Agent, skew: int, reason: str | None) -> None:
    headers, body = agent.signed("mark", {"name": "a"})
    agent.clock.now -= skew  # the message was signed `skew` seconds away from the agent's now
    status, result = agent.processor.handle(headers, body)
    if reason is None:
        assert status == 200
        assert marker_lines(agent.marker) == ["--name a"]
    else:
        assert (status, result["reason"], result["code"]) == (401, reason, reason)
        assert not agent.marker.exists()
        assert agent.processor.refusals()[0].reason == reason


def test_flipped_byte_in_body_is_refused(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "a"})
    tampered = body.replace(b'"a"', b'"b"')
    assert tampered != body
    status, result = agent.processor.handle(headers, tampered)
    assert (status, result["reason"]) == (401, "bad_signature")
    assert not agent.marker.exists()


def test_wrong_secret_is_refused_but_a_rotated_one_is_accepted(agent: Agent) -> None:
    other = signing.new_secret()
    status, result = agent.processor.handle(*agent.signed("mark", {"name": "a"}, secret=other))
    assert (status, result["reason"]) == (401, "bad_signature")
    assert not agent.marker.exists()
    rotating = CommandProcessor(
        [SECRET, other], agent.allowlist, agent.ledger, agent.executor, clock=agent.clock
    )
    assert rotating.handle(*agent.signed("mark", {"name": "a"}, secret=other))[0] == 200


@pytest.mark.parametrize("missing", [signing.HEADER_ID, signing.HEADER_TIMESTAMP, signing.HEADER_SIGNATURE])
def test_missing_signature_header_is_refused(agent: Agent, missing: str) -> None:
    headers, body = agent.signed("mark", {"name": "a"})
    del headers[missing]
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"]) == (401, "missing_headers")
    assert not agent.marker.exists()


def test_action_not_in_allowlist_is_rejected_and_ledgered(agent: Agent) -> None:
    status, result = agent.send("rm-rf", {}, command_id="c-x")
    assert (status, result["status"], result["reason"]) == (422, "rejected", "not_allowed")
    entry = agent.ledger.get("c-x")
    assert entry is not None and entry.state == "rejected"
    agent.clock.now += 2  # a re-signed retry gets the same answer, marked duplicate
    status, again = agent.send("rm-rf", {}, command_id="c-x")
    assert status == 422
    assert again["duplicate"] is True and again["output"] == result["output"]


INJECTIONS = [
    {"name": "nginx; rm -rf /"},
    {"name": "$(id)"},
    {"name": "`id`"},
    {"name": "a b"},
    {"name": "nginx\n"},
    {"name": "a\nb"},
    {"name": "../x"},
    {"name": "../../etc"},
    {"name": ""},
    {"name": "x" * 33},
    {},  # missing
    {"name": "a", "extra": "b"},  # undeclared
]


@pytest.mark.parametrize("params", INJECTIONS)
def test_parameter_injection_runs_nothing(agent: Agent, params: dict[str, str]) -> None:
    status, result = agent.send("mark", params)
    assert (status, result["reason"]) == (422, "not_allowed")
    assert not agent.marker.exists()
    assert agent.processor.refusal_counts() == {"not_allowed": 1}
    assert agent.processor.refusals()[0].action == "mark"


def test_same_command_id_runs_once_and_returns_the_stored_result(agent: Agent) -> None:
    first = agent.send("mark", {"name": "once"}, command_id="c-once")
    agent.clock.now += 3  # the dispatcher's retry: same id, fresh signature
    second = agent.send("mark", {"name": "once"}, command_id="c-once")
    assert marker_lines(agent.marker) == ["--name once"]
    assert second[0] == 200
    assert second[1]["duplicate"] is True
    assert {k: v for k, v in second[1].items() if k != "duplicate"} == first[1]


def test_replay_cache_and_ledger_survive_a_restart(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "r"}, command_id="c-r")
    assert agent.processor.handle(headers, body)[0] == 200
    agent.restart()
    agent.clock.now += 10
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"]) == (401, "replay")
    status, result = agent.send("mark", {"name": "r"}, command_id="c-r")
    assert status == 200 and result["duplicate"] is True
    assert marker_lines(agent.marker) == ["--name r"]


def test_a_command_running_during_a_crash_is_reported_interrupted_not_rerun(agent: Agent) -> None:
    assert agent.ledger.begin("c-crash", agent.clock(), "mark") is None  # then the agent dies
    agent.restart()
    status, result = agent.send("mark", {"name": "c"}, command_id="c-crash")
    assert status == 200
    assert result["status"] == "error" and result["output"] == INTERRUPTED_OUTPUT
    assert result["duplicate"] is True
    assert not agent.marker.exists()
    assert agent.ledger.interrupted_on_open == ["c-crash"]


def test_expired_command_is_rejected(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "a"}, expires_at=agent.clock() - 1)
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"]) == (422, "expired")
    assert not agent.marker.exists()


def test_command_older_than_the_ledger_memory_is_rejected(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "a"})
    agent.clock.now += agent.ledger.keep_results_s + 1
    headers = signing.signed_headers(SECRET, headers[signing.HEADER_ID], body, now=agent.clock())
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"]) == (422, "too_old")
    assert not agent.marker.exists()


def test_command_id_must_equal_webhook_id(agent: Agent) -> None:
    _, body = agent.signed("mark", {"name": "a"}, command_id="c-body")
    headers = signing.signed_headers(SECRET, "c-other", body, now=agent.clock())
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"]) == (400, "id_mismatch")
    assert not agent.marker.exists()


@pytest.mark.parametrize("body", [b"not json", b'{"command_id": "c"}', b'{"params": {"n": 1}}'])
def test_malformed_body_is_refused(agent: Agent, body: bytes) -> None:
    headers = signing.signed_headers(SECRET, "c", body, now=agent.clock())
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"]) == (400, "malformed")


def test_oversized_body_is_refused_before_verification(agent: Agent) -> None:
    body = b"x" * (agent.processor.max_body_bytes + 1)
    status, result = agent.processor.handle(
        signing.signed_headers(SECRET, "c", body, now=agent.clock()), body
    )
    assert (status, result["reason"]) == (413, "body_too_large")


def test_systemd_action_reports_a_clear_error_without_systemd(agent: Agent) -> None:
    status, result = agent.send("restart", {"unit": "nginx"})
    assert status == 200
    assert result["status"] == "error"
    assert "systemd is not running on this host" in result["output"]
    assert "systemctl restart --no-ask-password -- nginx.service" in result["output"]


def test_timeout_is_reported(agent: Agent) -> None:
    status, result = agent.send("hang", {})
    assert (status, result["status"], result["exit_code"]) == (200, "timeout", None)


def test_refusal_list_is_bounded_but_counts_are_not(agent: Agent) -> None:
    processor = CommandProcessor(
        SECRET, agent.allowlist, agent.ledger, agent.executor, clock=agent.clock, max_refusals=3
    )
    for _ in range(5):
        headers, body = agent.signed("mark", {"name": "a"}, secret=signing.new_secret())
        processor.handle(headers, body)
    assert len(processor.refusals()) == 3
    assert processor.refusal_counts() == {"bad_signature": 5}


def test_bad_secret_is_a_config_error(agent: Agent) -> None:
    with pytest.raises(ConfigError):
        CommandProcessor("whsec_not-base64!", agent.allowlist, agent.ledger, agent.executor)
    with pytest.raises(ConfigError):
        CommandProcessor([], agent.allowlist, agent.ledger, agent.executor)


def test_a_retry_while_the_first_delivery_still_runs_gets_running_not_a_second_run(agent: Agent) -> None:
    first = agent.signed("hang", {}, command_id="c-slow")
    agent.clock.now += 1
    retry = agent.signed("hang", {}, command_id="c-slow")
    answers: list[tuple[int, dict[str, object]]] = []
    worker = threading.Thread(target=lambda: answers.append(agent.processor.handle(*first)))
    worker.start()
    deadline = time.monotonic() + 5
    while agent.ledger.get("c-slow") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    status, result = agent.processor.handle(*retry)
    worker.join(10)
    assert (status, result["status"], result["duplicate"]) == (202, "running", True)
    assert answers[0][1]["status"] == "timeout"


def test_an_unwritable_ledger_fails_closed(agent: Agent) -> None:
    agent.ledger._db.close()  # the disk went away under the agent
    status, result = agent.send("mark", {"name": "a"})
    assert (status, result["status"], result["reason"]) == (503, "error", "ledger_unavailable")
    assert not agent.marker.exists()
    assert agent.processor.refusal_counts() == {"ledger_unavailable": 1}


def test_a_lazy_ledger_that_cannot_open_fails_closed(agent: Agent) -> None:
    """The agent opens its ledger at the first command: if that fails, the command does not run."""
    agent.stop()
    (agent.data_dir / DB_NAME).unlink()
    (agent.data_dir / DB_NAME).mkdir()  # cannot be opened as a database
    lazy = LazyLedger(agent.data_dir, clock=agent.clock)
    agent.processor = CommandProcessor(SECRET, agent.allowlist, lazy, agent.executor, clock=agent.clock)
    try:
        status, result = agent.send("mark", {"name": "a"})
        assert (status, result["status"], result["reason"]) == (503, "error", "ledger_unavailable")
        assert not agent.marker.exists()
    finally:
        lazy.close()
        (agent.data_dir / DB_NAME).rmdir()
        agent.start()


def test_a_non_integer_timestamp_is_bad_timestamp(agent: Agent) -> None:
    headers, body = agent.signed("mark", {"name": "a"})
    headers[signing.HEADER_TIMESTAMP] = "soon"
    status, result = agent.processor.handle(headers, body)
    assert (status, result["reason"], result["code"]) == (401, "bad_timestamp", "bad_timestamp")
    assert not agent.marker.exists()


def test_body_cap_is_the_sdk_receivers() -> None:
    """The agent keeps its own copy of the cap (importing the SDK would load Starlette and httpx)."""
    from infragent.agent import commands
    from infragent.sdk import webhook

    assert commands.MAX_BODY_BYTES == webhook.MAX_BODY_BYTES
