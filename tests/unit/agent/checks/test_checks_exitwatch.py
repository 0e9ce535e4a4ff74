"""The exit watch: a real ``sleep`` child is killed and its exit arrives without waiting for a poll.

Every check here polls once an hour, so only the pidfd can have reported the death before the
bounded wait ends; no timing is asserted. Skipped where this kernel gives no pidfd.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from infragent.agent import acting
from infragent.agent.checks import (
    CheckResult,
    CheckRunner,
    CheckState,
    CheckTransition,
    exitwatch,
    parse_check,
    step,
)
from infragent.errors import ConfigError

DEADLINE_S = 10.0
needs_pidfd = pytest.mark.skipif(not exitwatch.available(), reason="no pidfd_open on this host")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@needs_pidfd
def test_watch_reports_the_exit_of_a_killed_child(sleeper: subprocess.Popen[bytes]) -> None:
    exits: queue.Queue[tuple[str, int]] = queue.Queue()
    watch = exitwatch.ExitWatch(lambda name, pid: exits.put((name, pid)))
    try:
        assert watch.watch("sleeper", sleeper.pid) == "watching"
        assert watch.watch("sleeper", sleeper.pid) == "watching"  # the same pid again: no change
        assert watch.watching("sleeper") == sleeper.pid
        sleeper.send_signal(signal.SIGKILL)
        assert exits.get(timeout=DEADLINE_S) == ("sleeper", sleeper.pid)
        assert watch.watching("sleeper") is None  # reported once, then forgotten
    finally:
        watch.close()


@needs_pidfd
def test_watch_of_an_exited_pid_says_gone(sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.kill()
    sleeper.wait(10)  # reaped: the pid no longer exists
    watch = exitwatch.ExitWatch(lambda name, pid: None)
    try:
        assert watch.watch("sleeper", sleeper.pid) == "gone"
    finally:
        watch.close()


@needs_pidfd
def test_unwatched_process_exit_is_not_reported(sleeper: subprocess.Popen[bytes]) -> None:
    exits: queue.Queue[tuple[str, int]] = queue.Queue()
    other = subprocess.Popen(["sleep", "60"])
    watch = exitwatch.ExitWatch(lambda name, pid: exits.put((name, pid)))
    try:
        watch.watch("a", sleeper.pid)
        watch.watch("b", other.pid)
        watch.unwatch("a")
        sleeper.kill()
        other.kill()
        assert exits.get(timeout=DEADLINE_S) == ("b", other.pid)
        assert exits.empty()
    finally:
        watch.close()
        other.wait(10)


def _runner_with(check_raw: dict[str, object]) -> tuple[CheckRunner, queue.Queue[CheckTransition]]:
    transitions: queue.Queue[CheckTransition] = queue.Queue()
    runner = CheckRunner([parse_check(check_raw)], transitions.put)
    return runner, transitions


def _wait_up(runner: CheckRunner, name: str) -> None:
    import time

    deadline = time.monotonic() + DEADLINE_S
    while runner.states[name].status != "up":
        assert time.monotonic() < deadline, "the check never saw the process up"
        time.sleep(0.01)


@needs_pidfd
def test_pidfile_check_reports_app_down_on_exit_without_waiting_for_the_poll(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    runner, transitions = _runner_with(
        {
            "type": "process",
            "name": "svc",
            "pidfile": str(pidfile),
            "interval_s": 3600,
            "failures_before_down": 3,
            "watch_exit": True,
        }
    )
    runner.start()
    try:
        _wait_up(runner, "svc")
        sleeper.kill()
        down = transitions.get(timeout=DEADLINE_S)
    finally:
        runner.close()
    assert (down.kind, down.check, down.consecutive_failures) == ("app_down", "svc", 1)
    assert down.error is not None and down.error.startswith(f"pid {sleeper.pid} exited;")


@needs_pidfd
def test_name_check_reports_app_down_on_exit(tmp_path: Path) -> None:
    program = tmp_path / f"iaexit{os.getpid() % 100000}"  # a name no other process has
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    proc = subprocess.Popen([str(program), "60"])
    runner, transitions = _runner_with(
        {
            "type": "process",
            "name": "named",
            "process_name": program.name,
            "interval_s": 3600,
            "watch_exit": True,
        }
    )
    runner.start()
    try:
        _wait_up(runner, "named")
        proc.kill()
        down = transitions.get(timeout=DEADLINE_S)
    finally:
        runner.close()
        proc.kill()
        proc.wait(10)
    assert (down.kind, down.check) == ("app_down", "named")
    assert down.error is not None and down.error.startswith(f"pid {proc.pid} exited;")


def test_without_watch_exit_a_process_check_only_polls(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(str(sleeper.pid))
    runner, _ = _runner_with({"type": "process", "name": "svc", "pidfile": str(pidfile)})
    try:
        assert runner._exit_watch is None
    finally:
        runner.close()


def test_definite_failure_skips_the_threshold_and_a_doubtful_one_does_not() -> None:
    state = CheckState(name="svc", failures_before_down=3, status="up")
    doubtful, transition = step(state, CheckResult("down", None, "gone"), 10.0)
    assert transition is None and doubtful.status == "up"
    certain, transition = step(state, CheckResult("down", None, "pid 7 exited", definite=True), 10.0)
    assert transition is not None and transition.kind == "app_down" and certain.status == "down"


def test_watch_exit_must_be_a_boolean() -> None:
    check = parse_check({"type": "process", "name": "p", "pidfile": "/run/p.pid", "watch_exit": "true"})
    assert check.watch_exit is True  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"watch_exit: Input should be a valid boolean"):
        parse_check({"type": "process", "name": "p", "pidfile": "/run/p.pid", "watch_exit": 1})


@needs_pidfd
def test_an_exit_during_the_agents_own_action_waits_for_the_poll(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """A restart stops the old process before it starts the new one: that exit does not make the
    check run at once (which found no process yet and opened a second incident and a second
    restart); the next poll finds the new process."""
    import time

    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    runner, transitions = _runner_with(
        {
            "type": "process",
            "name": "svc",
            "pidfile": str(pidfile),
            "interval_s": 3600,
            "failures_before_down": 1,
            "watch_exit": True,
        }
    )
    runner.start()
    try:
        _wait_up(runner, "svc")
        with acting.action():
            sleeper.kill()
            sleeper.wait(10)
            time.sleep(0.5)  # outside an action the exit's probe runs within milliseconds
            state = runner.states["svc"]
    finally:
        runner.close()
    assert (state.status, state.consecutive_failures) == ("up", 0)
    assert transitions.empty()
