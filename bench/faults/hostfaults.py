"""The host faults: a CPU hog, a memory leak, a disk filling up, and the agent going silent.

Each is a bounded child the suite starts (``service.py cpu|leak|fill``) that trips one alert rule
of ``book.rules``. The runbook for that rule runs the agent's allowlisted fix (``kill-hog`` kills
the child's process group from its pidfile, ``cleanup-disk`` deletes the file) and verifies that
the alert resolved; the agent's silence has no fix, its runbook escalates at once. The suite kills
what is left of a child when the fault is over, healed or not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import book
from scenarios import Outcome, Say, incidents_since, measure, runs_ended, runs_since, settle
from stack import SERVICE, Stack, wait_until


def _rule_runs_ended(stack: Stack, t0: float, rule: str) -> bool:
    ids = {i["id"] for i in incidents_since(stack, t0) if i.get("rule_name") == rule}
    runs = [r for r in runs_since(stack, t0) if r["incident_id"] in ids]
    return bool(runs) and all(r["ended_at"] is not None for r in runs)


def alert_fault(
    stack: Stack,
    name: str,
    rule: str,
    action: str,
    start: list[str],
    gone: Callable[[subprocess.Popen[bytes]], bool],
    say: Say,
    timeout_s: float = 40,
) -> Outcome:
    """Start ``start`` (a bounded child), wait for ``rule``'s incident, its run and its end."""
    out = Outcome(name, remediable=True)
    settle(stack)
    t0 = time.time()
    child = subprocess.Popen(
        [sys.executable, str(SERVICE), *start],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        try:
            wait_until(
                lambda: any(i.get("rule_name") == rule for i in incidents_since(stack, t0)),
                timeout_s,
                f"the {rule} incident",
                0.25,
            )
            out.detected = True
            wait_until(lambda: _rule_runs_ended(stack, t0, rule), 60, f"the {rule} run to end", 0.25)
        except TimeoutError as exc:
            out.note = str(exc)
        wanted = lambda i: i.get("rule_name") == rule  # noqa: E731
        runs = measure(stack, t0, out, {action}, wanted)
        out.healed = any(r["verified_at"] for r in runs) and gone(child)
        if out.detected and not out.healed and not out.note:
            out.note = "; ".join(r["summary"][:200] for r in runs) or "no run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    say(f"  {name}: detected={out.detected} healed={out.healed} MTTR {out.mttr_s} actions={out.actions}")
    return out


def _dead(child: subprocess.Popen[bytes]) -> bool:
    """The hog's process is gone (reaped here: a zombie would still answer a signal 0)."""
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        return False
    return True


def cpu_hog(stack: Stack, say: Say) -> Outcome:
    cores = os.cpu_count() or 1
    argv = ["cpu", "--workers", str(cores), "--seconds", "60", "--pidfile", str(stack.hog_pidfile)]
    return alert_fault(
        stack, f"CPU hog ({cores} busy loops)", book.RULE_CPU, book.KILL_HOG, argv,
        _dead, say,
    )  # fmt: skip


def memory_leak(stack: Stack, say: Say) -> Outcome:
    argv = ["leak", "--cap-mib", str(book.LEAK_MIB), "--step-mib", "64", "--hold", "60",
            "--pidfile", str(stack.leak_pidfile)]  # fmt: skip
    return alert_fault(
        stack, f"memory leak (to {book.LEAK_MIB} MiB, RLIMIT_AS)", book.RULE_MEMORY, book.KILL_LEAK, argv,
        _dead, say,
    )  # fmt: skip


def disk_filling(stack: Stack, say: Say) -> Outcome:
    path = stack.fill_dir / "fill.bin"
    argv = ["fill", "--path", str(path), "--size", str(book.FILL_BYTES)]
    return alert_fault(
        stack, f"disk filling ({book.FILL_BYTES >> 30} GiB file, RLIMIT_FSIZE)", book.RULE_DISK, book.CLEANUP,
        argv, lambda _child: not path.exists(), say,
    )  # fmt: skip


def agent_offline(stack: Stack, say: Say, timeout_s: float = 30) -> Outcome:
    """SIGKILL the agent: the server notices its silence (an absence rule) and a person is called."""
    out = Outcome("agent offline (SIGKILL)", remediable=False)
    settle(stack)
    t0 = time.time()
    stack.agent.stop(signal.SIGKILL)
    rule = book.RULE_AGENT
    try:
        wait_until(
            lambda: any(i.get("rule_name") == rule for i in incidents_since(stack, t0)),
            timeout_s,
            "the silence incident",
            0.25,
        )
        out.detected = True
        wait_until(lambda: _rule_runs_ended(stack, t0, rule), 20, "its run to end", 0.25)
    except TimeoutError as exc:
        out.note = str(exc)
    measure(stack, t0, out, set(), lambda i: i.get("rule_name") == rule)
    stack.start_agent()
    wait_until(stack.agent_registered, 60, "the agent back", 0.1)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: runs_ended(stack, t0), 20, "runs to end", 0.25)
    say(f"  agent offline: detected={out.detected} escalated={out.escalated}")
    return out
