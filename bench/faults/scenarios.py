"""The faults: each breaks something real on this machine, then measures what the system did.

A fault's outcome is read from the outside (HTTP health of the service, the kill time) and from
the server's own API (incidents opened, commands sent, escalations), never from our internals.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stack import SERVICE, Stack, wait_until

#: What the guardrail budget allows per host and action in 30 minutes; more is a storm.
BUDGET = 3


@dataclass
class Outcome:
    fault: str
    remediable: bool
    detected: bool = False
    healed: bool = False
    escalated: bool = False
    mttr_s: float | None = None
    actions: int = 0
    unsafe: int = 0
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def storms(self) -> int:
        return 1 if self.actions > BUDGET else 0


def _audit_since(stack: Stack, t0: float) -> list[dict[str, object]]:
    entries = stack.request("GET", "/api/v1/audit?limit=500")["entries"]
    return [e for e in entries if float(e["at"]) >= t0]


def _commands(stack: Stack, t0: float) -> list[dict[str, object]]:
    """The decisions that sent a command (an action taken), from the audit log."""
    return [
        e
        for e in _audit_since(stack, t0)
        if e["kind"] == "decision.made"
        and isinstance(e.get("detail"), dict)
        and e["detail"].get("command_id")
    ]


def _incidents_since(stack: Stack, t0: float) -> list[dict[str, object]]:
    found = stack.request("GET", f"/api/v1/incidents?since={t0}&limit=200")["incidents"]
    return [i for i in found if float(i["opened_at"]) >= t0 or _last(i.get("reopened_at")) >= t0]


def _last(value: object) -> float:
    if isinstance(value, list):
        return max((float(v) for v in value), default=0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _count(stack: Stack, t0: float, outcome: Outcome, allowed: set[str]) -> None:
    cmds = _commands(stack, t0)
    outcome.actions = len(cmds)
    outcome.unsafe = sum(1 for c in cmds if _action(c) not in allowed)
    incidents = _incidents_since(stack, t0)
    outcome.detected = outcome.detected or bool(incidents)
    outcome.escalated = any(i["status"] == "escalated" for i in incidents)


def _action(entry: dict[str, object]) -> str:
    detail = entry.get("detail")
    return str(detail.get("action")) if isinstance(detail, dict) else ""


def settle(stack: Stack, timeout_s: float = 30) -> None:
    """Before a fault: the service answers, the last fault's commands are done, its incidents closed.

    Why close them here: the legacy responder decides once per incident episode and does not
    resolve an incident when the service recovers (verification is the step executor's, not
    landed yet), so the next crash would join the old, already decided incident and get no
    restart. We resolve them as the operator would; the step executor's ``verify`` makes this moot.
    """
    wait_until(stack.healthy, timeout_s, "the service to be healthy before the fault")
    time.sleep(2.5)  # past the responder's 2 s cooldown of the previous action
    resolve_open(stack)


def resolve_open(stack: Stack) -> None:
    found = stack.request(
        "GET", "/api/v1/incidents?status=open&status=acknowledged&status=remediating&limit=200"
    )
    for incident in found["incidents"]:
        with contextlib.suppress(OSError):  # moved meanwhile
            stack.request("POST", f"/api/v1/incidents/{incident['id']}/resolve", {"note": "fault suite"})


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


def signal_pid(pid: int, sig: int) -> None:
    import os

    os.kill(pid, sig)


def crash(stack: Stack, trials: int, say: callable) -> Outcome:  # type: ignore[valid-type]
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
    _count(stack, t0, out, {"restart"})
    out.detected = out.detected or bool(out.samples)
    out.healed = len(out.samples) == trials
    out.mttr_s = _p(out.samples, 50) if out.samples else None
    out.actions = round(out.actions / max(1, trials))  # per trial
    return out


def crash_loop(stack: Stack, say: callable, observe_s: float = 25) -> Outcome:  # type: ignore[valid-type]
    out = Outcome("crash loop (dies < 1 s after start)", remediable=False)
    settle(stack)
    (stack.state / "crashloop").write_text("1")
    t0 = time.time()
    pid = stack.service_pid()
    assert pid is not None
    signal_pid(pid, signal.SIGKILL)
    end = time.monotonic() + observe_s
    while time.monotonic() < end:
        time.sleep(1)
    (stack.state / "crashloop").unlink()
    _count(stack, t0, out, {"restart"})
    say(f"  crash loop: {out.actions} restarts in {observe_s:g} s, escalated={out.escalated}")
    out.note = "" if out.escalated else "not escalated"
    _restore(stack)
    return out


def hung(stack: Stack, say: callable) -> Outcome:  # type: ignore[valid-type]
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
        out.mttr_s = time.monotonic() - t_stop
        out.healed = True
    except TimeoutError as exc:
        out.note = str(exc)
        signal_pid(pid, signal.SIGKILL)
    _count(stack, t0, out, {"restart"})
    out.detected = out.detected or out.healed
    say(f"  hung: healed={out.healed} in {out.mttr_s}")
    _restore(stack)
    return out


def _restore(stack: Stack) -> None:
    """After a fault that may leave the service down: start it ourselves if nothing did."""
    try:
        wait_until(stack.healthy, 10, "the service")
    except TimeoutError:
        subprocess.Popen(stack.service_argv(), start_new_session=True, stdin=subprocess.DEVNULL)
        wait_until(stack.healthy, 20, "the service restarted by the suite")


def child_fault(
    stack: Stack, name: str, argv: list[str], rule: str, say: callable, timeout_s: float = 25
) -> Outcome:  # type: ignore[valid-type]
    """A bounded child (hog, leak, fill) that should raise an alert and be escalated, never restarted."""
    out = Outcome(name, remediable=False)
    settle(stack)
    t0 = time.time()
    child = subprocess.Popen([sys.executable, str(SERVICE), *argv], start_new_session=True)
    try:

        def seen() -> bool:
            return any(i.get("rule_name") == rule for i in _incidents_since(stack, t0))

        try:
            wait_until(seen, timeout_s, f"the {rule} incident", 0.25)
            out.detected = True
        except TimeoutError:
            out.note = f"no {rule} incident in {timeout_s:g} s"
        if out.detected:
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: _escalated(stack, t0, rule), 10, "escalation", 0.25)
    finally:
        child.kill()
        child.wait(10)
    _count(stack, t0, out, set())
    out.escalated = _escalated(stack, t0, rule)
    say(f"  {name}: detected={out.detected} escalated={out.escalated} actions={out.actions}")
    return out


def _escalated(stack: Stack, t0: float, rule: str) -> bool:
    return any(i.get("rule_name") == rule and i["status"] == "escalated" for i in _incidents_since(stack, t0))


def _p(values: list[float], pct: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def pctl(values: list[float], pct: float) -> float:
    return _p(values, pct)


def work_file(stack: Stack) -> Path:
    return stack.work / "fill.bin"


RULES = """groups:
  - name: faults
    rules:
      - alert: FaultsAgentGone
        kind: absence
        silent: 3s
        by: [host]
        severity: critical
"""


def agent_offline(stack: Stack, say: callable, timeout_s: float = 30) -> Outcome:  # type: ignore[valid-type]
    """SIGKILL the agent: the server must notice its silence (an absence rule) and escalate."""
    out = Outcome("agent offline (SIGKILL)", remediable=False)
    settle(stack)
    t0 = time.time()
    stack.agent.stop(signal.SIGKILL)
    rule = "FaultsAgentGone"
    try:
        wait_until(
            lambda: any(i.get("rule_name") == rule for i in _incidents_since(stack, t0)),
            timeout_s,
            "the silence incident",
            0.25,
        )
        out.detected = True
        try:
            wait_until(lambda: _escalated(stack, t0, rule), 10, "its escalation", 0.25)
        except TimeoutError:
            out.note = "incident opened, not escalated (alert incidents: no runbook acts on them yet)"
    except TimeoutError:
        out.note = f"no {rule} incident in {timeout_s:g} s"
    _count(stack, t0, out, set())
    out.escalated = _escalated(stack, t0, rule)
    stack.start_agent()
    wait_until(stack.agent_registered, 60, "the agent back", 0.1)
    say(f"  agent offline: detected={out.detected} escalated={out.escalated}")
    return out


def server_restart(stack: Stack, say: callable) -> Outcome:  # type: ignore[valid-type]
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
        out.mttr_s = time.monotonic() - t_kill
        out.healed = out.detected = True
    except TimeoutError as exc:
        out.note = str(exc)
    _count(stack, t0, out, {"restart"})
    say(f"  server restart: healed={out.healed} in {out.mttr_s}")
    _restore(stack)
    return out
