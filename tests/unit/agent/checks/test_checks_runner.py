"""The runner: due checks run on their own threads (process checks inline); transitions are
reported to ``on_transition`` at once.

No sleeps: tests either drive ``tick(now)`` with a fake clock, or wait on an event with a deadline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest

from infragent.agent.checks import CheckConfig, CheckResult, CheckRunner, CheckTransition, parse_check

DEADLINE_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def command(name: str, argv: list[str], **extra: object) -> CheckConfig:
    return parse_check({"type": "command", "name": name, "argv": argv, "failures_before_down": 1, **extra})


def wait_idle(runner: CheckRunner) -> None:
    """Poll until no probe is running."""
    deadline = time.monotonic() + DEADLINE_S
    while runner.running:
        assert time.monotonic() < deadline, "checks did not finish"
        time.sleep(0.005)


def test_real_failing_check_reports_down_promptly() -> None:
    transitions: queue.Queue[CheckTransition] = queue.Queue()
    runner = CheckRunner([command("broken", ["false"])], transitions.put)
    runner.start()
    try:
        down = transitions.get(timeout=DEADLINE_S)
    finally:
        runner.close()
    assert (down.kind, down.check, down.error, down.consecutive_failures) == (
        "app_down",
        "broken",
        "exit 1",
        1,
    )


def test_down_then_recovered_driving_time_by_hand() -> None:
    clock = Clock()
    outcomes = iter(["down", "down", "up"])
    got: list[CheckTransition] = []
    runner = CheckRunner(
        [command("app", ["unused"], interval_s=10, failures_before_down=2)],
        got.append,
        probe=lambda _: CheckResult(next(outcomes), 1.0, "refused"),  # type: ignore[arg-type]
        clock=clock,
    )
    try:
        for _ in range(3):
            assert runner.tick(clock.now) == ["app"]
            assert runner.tick(clock.now) == []  # not due again until its interval passes
            wait_idle(runner)
            clock.now += 10
    finally:
        runner.close()
    assert [(t.kind, t.at, t.since, t.downtime_s) for t in got] == [
        ("app_down", 1010.0, 1000.0, None),
        ("app_recovered", 1020.0, 1000.0, 20.0),
    ]
    assert runner.states["app"].status == "up"
    assert {p.name: p.value for p in runner.points()} == {
        "infragent.check.up": 1.0,
        "infragent.check.latency": 1.0,
    }


def test_a_slow_check_does_not_delay_another() -> None:
    release = threading.Event()
    transitions: queue.Queue[CheckTransition] = queue.Queue()

    def probe(check: CheckConfig) -> CheckResult:
        if check.name == "slow":
            release.wait(DEADLINE_S)
        return CheckResult("down", 1.0, f"{check.name} failed")

    runner = CheckRunner([command("slow", ["x"]), command("fast", ["x"])], transitions.put, probe=probe)
    try:
        assert runner.tick(time.time()) == ["slow", "fast"]
        first = transitions.get(timeout=DEADLINE_S)
        assert first.check == "fast"
        assert not release.is_set()  # the slow probe is still running
        assert runner.tick(time.time()) == []  # and is not started twice meanwhile
        release.set()
        assert transitions.get(timeout=DEADLINE_S).check == "slow"
    finally:
        release.set()
        runner.close()


def test_failing_callback_and_crashing_probe_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    def probe(check: CheckConfig) -> CheckResult:
        raise RuntimeError("probe bug")

    def on_transition(transition: CheckTransition) -> None:
        raise ConnectionError("server unreachable")

    runner = CheckRunner([command("c", ["x"])], on_transition, probe=probe)
    with caplog.at_level(logging.ERROR, logger="infragent.agent.checks.runner"):
        runner.tick(time.time())
        deadline = time.monotonic() + DEADLINE_S
        while "on_transition failed" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    runner.close()
    state = runner.states["c"]
    assert state.status == "down"
    assert state.last_error == "probe crashed: RuntimeError: probe bug"
    assert "probe for check c crashed" in caplog.text


def test_unavailable_check_stays_unknown_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    got: list[CheckTransition] = []
    runner = CheckRunner(
        [command("unit", ["x"], interval_s=1)],
        got.append,
        probe=lambda _: CheckResult("unavailable", None, "systemd is not running"),
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="infragent.agent.checks.runner"):
        for _ in range(3):
            runner.tick(clock.now)
            wait_idle(runner)
            clock.now += 1
    runner.close()
    assert got == []
    assert runner.states["unit"].status == "unknown"
    assert caplog.text.count("cannot run on this host") == 1


def _probe_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("infragent-check-")]


def test_process_checks_run_on_the_scheduler_thread_and_no_probe_thread_outlives_its_run() -> None:
    ran_on: dict[str, str] = {}

    def probe(check: CheckConfig) -> CheckResult:
        ran_on[check.name] = threading.current_thread().name
        return CheckResult("up", 1.0)

    process = parse_check({"type": "process", "name": "proc", "process_name": "python"})
    runner = CheckRunner([process, command("cmd", ["x"])], lambda _: None, probe=probe)
    try:
        assert runner.tick(time.time()) == ["proc", "cmd"]
        assert ran_on["proc"] == threading.current_thread().name  # finished inside tick
        wait_idle(runner)
        assert ran_on["cmd"] == "infragent-check-cmd"
        deadline = time.monotonic() + DEADLINE_S
        while _probe_threads():  # the probe's thread ends with its run: nothing idles between runs
            assert time.monotonic() < deadline, _probe_threads()
            time.sleep(0.005)
    finally:
        runner.close()


def test_at_most_max_workers_probe_threads_and_the_rest_wait_their_turn() -> None:
    release = threading.Event()

    def probe(check: CheckConfig) -> CheckResult:
        release.wait(DEADLINE_S)
        return CheckResult("up", 1.0)

    runner = CheckRunner(
        [command(f"c{i}", ["x"]) for i in range(3)], lambda _: None, probe=probe, max_workers=2
    )
    try:
        now = time.time()
        assert runner.tick(now) == ["c0", "c1"]
        assert runner.tick(now) == []  # c2 is due but both threads are busy
        release.set()
        wait_idle(runner)
        assert runner.tick(now) == ["c2"]
    finally:
        release.set()
        runner.close()
