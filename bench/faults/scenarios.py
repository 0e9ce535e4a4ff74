"""The service faults: each breaks something real on this machine, then measures what the system did.

An outcome is read from the outside (HTTP health of the service, the kill time) and from the
server's own API, never from our internals: incidents (``/api/v1/incidents``), runbook runs with
their steps (``/api/v1/runs``: verified recovery, MTTR, escalations) and every command the server
queued for the agent (the audit log's ``command.queued``, each read back with
``/api/v1/commands/{id}``). A command is **unsafe** when no run's ``act`` step sent it (something
acted outside the runbooks), or its action is not on the allowlist of the runbook that sent it
(``book.ALLOWED``) or of the fault. A
**storm** is more than the budget's 3 commands of one action for one fault.

Nothing here closes an incident: the runbooks' ``verify`` steps resolve them (with MTTR), or an
escalation ends them; a later failure reopens the incident as a new episode and a new run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import book
from stack import Stack, wait_until

#: What the guardrail budget allows per host and action in 30 minutes; more is a storm.
BUDGET = 3
Say = Callable[[str], None]


@dataclass
class Outcome:
    fault: str
    remediable: bool
    detected: bool = False
    healed: bool = False
    escalated: bool = False
    escalations: int = 0
    mttr_s: float | None = None
    actions: int = 0
    unsafe: int = 0
    storms: int = 0
    note: str = ""
    samples: list[float] = field(default_factory=list)


def _get(stack: Stack, path: str) -> Any:
    return stack.request("GET", path)


def incidents_since(stack: Stack, t0: float) -> list[dict[str, Any]]:
    found = _get(stack, f"/api/v1/incidents?since={t0}&limit=200")["incidents"]
    return [i for i in found if float(i["opened_at"]) >= t0 or _last(i.get("reopened_at")) >= t0]


def _last(value: object) -> float:
    if isinstance(value, list):
        return max((float(v) for v in value), default=0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def runs_since(stack: Stack, t0: float) -> list[dict[str, Any]]:
    return [r for r in _get(stack, "/api/v1/runs?limit=200")["runs"] if float(r["created_at"]) >= t0]


def queued_commands(stack: Stack, t0: float) -> list[dict[str, Any]]:
    """Every command queued for the agent since ``t0``, whoever decided it."""
    ids: list[str] = []
    before = ""
    while True:  # newest first, page back to t0
        page = _get(stack, f"/api/v1/audit?limit=500{before}")
        entries = page["entries"]
        ids += [e["subject"] for e in entries if e["kind"] == "command.queued" and float(e["at"]) >= t0]
        if not entries or float(entries[-1]["at"]) < t0 or page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    return [_get(stack, f"/api/v1/commands/{cid}") for cid in ids]


def measure(
    stack: Stack,
    t0: float,
    out: Outcome,
    allowed: set[str],
    wanted: Callable[[dict[str, Any]], bool] = lambda _i: True,
) -> list[dict[str, Any]]:
    """Fill ``out`` from the API: the runs of the fault's incidents (``wanted``) and every command."""
    incidents = {i["id"]: i for i in incidents_since(stack, t0) if wanted(i)}
    runs = [r for r in runs_since(stack, t0) if r["incident_id"] in incidents]
    by_runs = {s["command_id"] for r in runs for s in r["steps"] if s["kind"] == "act" and s["command_id"]}
    # every run since t0 (another rule's incident may get one meanwhile): who may send what
    runbook_of = {
        s["command_id"]: r["runbook"] for r in runs_since(stack, t0) for s in r["steps"] if s["command_id"]
    }
    commands = queued_commands(stack, t0)
    mine = [c for c in commands if c["command_id"] in by_runs]
    out.detected = out.detected or bool(incidents)
    out.actions = len(mine)
    out.unsafe = sum(
        1
        for c in commands
        if (c in mine and c["action"] not in allowed)  # the fault's run sent another action
        or c["command_id"] not in runbook_of  # sent outside every runbook run
        or c["action"] not in book.ALLOWED.get(runbook_of[c["command_id"]], set())
    )
    per_action: dict[str, int] = {}
    for c in mine:
        per_action[c["action"]] = per_action.get(c["action"], 0) + 1
    out.storms = sum(1 for n in per_action.values() if n > BUDGET)
    out.escalations = sum(1 for r in runs if r["outcome"] == "escalated")
    out.escalated = out.escalations > 0
    mttrs = [float(r["mttr_s"]) for r in runs if r["mttr_s"] is not None]
    if mttrs and out.mttr_s is None:
        out.mttr_s = pctl(mttrs, 50)
    return runs


def runs_ended(stack: Stack, t0: float = 0.0) -> bool:
    return all(r["ended_at"] is not None for r in runs_since(stack, t0))


def settle(stack: Stack, timeout_s: float = 45) -> None:
    """Before a fault: the service answers and every run of the last fault has ended."""
    wait_until(stack.healthy, timeout_s, "the service to be healthy before the fault")
    wait_until(lambda: runs_ended(stack), timeout_s, "the last fault's runs to end", 0.2)


def signal_pid(pid: int, sig: int) -> None:
    os.kill(pid, sig)


def kill_and_heal(stack: Stack, *, phase: bool = True, timeout_s: float = 30) -> float:
    """SIGKILL the service at a random point of the 1 s check cycle; kill -> HTTP 200 in seconds."""
    wait_until(stack.healthy, timeout_s, "the service before the kill")
    if phase:
        time.sleep(random.uniform(1.0, 2.0))
    pid = stack.service_pid()
    assert pid is not None
    t_kill = time.monotonic()
    signal_pid(pid, signal.SIGKILL)
    while not stack.healthy():
        if time.monotonic() - t_kill > timeout_s:
            raise TimeoutError("the service was not healed")
        time.sleep(0.01)
    return time.monotonic() - t_kill


def crash(stack: Stack, trials: int, say: Say) -> Outcome:
    out = Outcome("service crash (SIGKILL)", remediable=True)
    t0 = time.time()
    for i in range(trials):
        settle(stack)
        try:
            out.samples.append(kill_and_heal(stack))
        except TimeoutError as exc:
            out.note = str(exc)
            break
        say(f"  crash trial {i + 1}/{trials}: {out.samples[-1]:.3f} s")
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: runs_ended(stack, t0), 30, "the crash runs to end", 0.2)
    runs = measure(stack, t0, out, {book.RESTART})
    verified = [r for r in runs if r["verified_at"] is not None]
    out.healed = len(out.samples) == trials and len(verified) >= trials
    if len(verified) < trials:
        out.note = out.note or f"{len(verified)} of {trials} runs verified"
    out.actions = round(out.actions / max(1, trials))  # per trial
    # each trial is a fault of its own (the series' stack has a raised budget): a storm is a
    # trial's run sending more than the budget, not the series' sum
    out.storms = sum(
        1 for r in runs if sum(1 for s in r["steps"] if s["kind"] == "act" and s["command_id"]) > BUDGET
    )
    return out


def crash_loop(stack: Stack, say: Say, timeout_s: float = 60) -> Outcome:
    """Every restart dies within 1 s: the budget allows 3 restarts, then one escalation."""
    out = Outcome("crash loop (dies < 1 s after start)", remediable=False)
    settle(stack)
    (stack.state / "crashloop").write_text("1")
    t0 = time.time()
    pid = stack.service_pid()
    assert pid is not None
    signal_pid(pid, signal.SIGKILL)
    try:
        wait_until(
            lambda: any(r["outcome"] == "escalated" for r in runs_since(stack, t0)),
            timeout_s,
            "escalation",
            0.25,
        )
        time.sleep(5)  # a fourth restart or a second escalation would show now
        wait_until(lambda: runs_ended(stack, t0), 40, "the runs to end", 0.25)
    except TimeoutError as exc:
        out.note = str(exc)
    (stack.state / "crashloop").unlink()
    measure(stack, t0, out, {book.RESTART})
    out.mttr_s = None  # nothing to recover: a person must look
    say(f"  crash loop: {out.actions} restarts, {out.escalations} escalation(s)")
    if not out.note and (out.actions, out.escalations) != (BUDGET, 1):
        out.note = f"{out.actions} restarts and {out.escalations} escalations (want {BUDGET} and 1)"
    restore(stack)
    return out


def hung(stack: Stack, say: Say) -> Outcome:
    out = Outcome("hung service (SIGSTOP, pid alive)", remediable=True)
    settle(stack)
    pid = stack.service_pid()
    assert pid is not None
    t0, t_stop = time.time(), time.monotonic()
    signal_pid(pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: stack.service_pid() != pid and stack.healthy(), 30, "the hung service healed", 0.01
        )
        wait_until(lambda: runs_ended(stack, t0), 30, "the run to end", 0.2)
        out.healed = any(r["verified_at"] for r in runs_since(stack, t0))
        out.note = "" if out.healed else "restarted but not verified"
    except TimeoutError as exc:
        out.note = str(exc)
        with contextlib.suppress(ProcessLookupError):
            signal_pid(pid, signal.SIGKILL)
    measure(stack, t0, out, {book.RESTART})
    say(f"  hung: healed={out.healed} MTTR {out.mttr_s} s ({time.monotonic() - t_stop:.2f} s to now)")
    restore(stack)
    return out


def restore(stack: Stack) -> None:
    """After a fault that may leave the service down: start it ourselves if nothing did."""
    try:
        wait_until(stack.healthy, 10, "the service")
    except TimeoutError:
        subprocess.Popen(stack.service_argv(), start_new_session=True, stdin=subprocess.DEVNULL)
        wait_until(stack.healthy, 20, "the service restarted by the suite")


def server_restart(stack: Stack, say: Say) -> Outcome:
    """Crash the service, then SIGKILL the server+responder at once and start it again."""
    out = Outcome("server restarted mid-incident", remediable=True)
    settle(stack)
    pid = stack.service_pid()
    assert pid is not None
    t0, t_kill = time.time(), time.monotonic()
    signal_pid(pid, signal.SIGKILL)
    time.sleep(0.05)  # the agent's app_down is on its way or stored
    stack.server.stop(signal.SIGKILL)
    stack.start_server()
    try:
        wait_until(stack.healthy, 60, "the service healed after the server restart", 0.01)
        wait_until(lambda: runs_ended(stack, t0), 40, "the run to end", 0.2)
        out.healed = any(r["verified_at"] for r in runs_since(stack, t0))
        out.note = "" if out.healed else "restarted but not verified"
    except TimeoutError as exc:
        out.note = str(exc)
    measure(stack, t0, out, {book.RESTART})
    say(f"  server restart: healed={out.healed} MTTR {out.mttr_s} s ({time.monotonic() - t_kill:.2f} s)")
    restore(stack)
    return out


def pctl(values: list[float], pct: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
