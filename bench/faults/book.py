"""What the suite configures: the step runbooks, the alert rules and the agent's fix-it scripts.

Why step runbooks and not the server's built-in single-action ones: the suite measures what the
product promises, a fix that is *verified* (the check comes back, the alert resolves) or a person
called with a summary, under the guardrails' budget. Each remediable fault has an allowlisted
action on the agent; the others (agent gone silent) have an ``escalate`` step: a person must look.

The alert thresholds are relative to this machine's state when the suite starts (``Baseline``):
the disk rule fires a gigabyte above today's use of ``/``, the memory rule 1.5 GiB above today's,
so the faults are bounded children (a 2 GiB file in a temp dir, a 3 GiB allocation under
``RLIMIT_AS``) and never fill a real disk or exhaust the machine's memory.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: the act steps' actions, per fault kind: anything else sent is unsafe
RESTART, KILL_HOG, KILL_LEAK, CLEANUP = "restart", "kill-hog", "kill-leak", "cleanup-disk"
RULE_CPU, RULE_MEMORY, RULE_DISK, RULE_AGENT = (
    "FaultsCpuHog",
    "FaultsMemoryLeak",
    "FaultsDiskFilling",
    "FaultsAgentGone",
)
GIB = 1 << 30
DISK_METRIC = 'system.filesystem.utilization{system.filesystem.state="used",system.filesystem.mountpoint="/"}'
FILL_BYTES = 2 * GIB
LEAK_MIB = 3072

RUNBOOKS = """runbooks:
  - name: restart-svc                   # the process check went down: the process is gone
    match: {event_type: app_down, service: svc}
    steps:                              # retry until it stays up; the budget (3) ends a crash loop
      - {id: restart, act: {action: restart, target: "{service}"}, on_failure: goto backoff}
      - {id: verify, verify: {signal: check}, timeout: 15s, on_success: complete, on_failure: next}
      - {id: backoff, wait: 2s, on_success: goto restart}

  - name: restart-hung-svc              # HTTP fails: hung if the process lives, else restart-svc's
    match: {event_type: app_down, service: svc-http}
    steps:
      - {id: alive, check: {probe: svc, expect: up}, on_failure: goto crashed}
      - {id: restart, act: {action: restart, target: svc}}
      - {id: verify, verify: {signal: check}, timeout: 20s, on_success: complete, on_failure: next}
      - {id: page, escalate: "svc on {node_id} is hung and a restart did not fix it"}
      - {id: crashed, verify: {signal: check}, timeout: 30s, on_success: complete, on_failure: next}
      - {id: left, wait: 1s}

  - name: kill-cpu-hog
    match: {rule: FaultsCpuHog}
    steps:
      - {id: kill, act: {action: kill-hog, target: "{node_id}"}}
      - {id: verify, verify: {signal: alert}, timeout: 60s, on_success: complete, on_failure: next}
      - {id: page, escalate: "CPU on {node_id} still busy after the hog was killed"}

  - name: kill-memory-leak
    match: {rule: FaultsMemoryLeak}
    steps:
      - {id: kill, act: {action: kill-leak, target: "{node_id}"}}
      - {id: verify, verify: {signal: alert}, timeout: 30s, on_success: complete, on_failure: next}
      - {id: page, escalate: "memory on {node_id} still high after the leak was killed"}

  - name: cleanup-disk
    match: {rule: FaultsDiskFilling}
    steps:
      - {id: clean, act: {action: cleanup-disk, target: "{node_id}"}}
      - {id: verify, verify: {signal: alert}, timeout: 30s, on_success: complete, on_failure: next}
      - {id: page, escalate: "/ on {node_id} still full after the cleanup"}

  - name: agent-gone
    match: {rule: FaultsAgentGone}
    steps:
      - {id: page, escalate: "the agent on {node_id} went silent: a person must look"}
"""

#: each runbook's allowlist: a command of another action sent by its run is unsafe
ALLOWED: dict[str, set[str]] = {
    "restart-svc": {RESTART},
    "restart-hung-svc": {RESTART},
    "kill-cpu-hog": {KILL_HOG},
    "kill-memory-leak": {KILL_LEAK},
    "cleanup-disk": {CLEANUP},
    "agent-gone": set(),
}


@dataclass(frozen=True)
class Baseline:
    """This machine's figures when the suite starts, the alert thresholds are set above them."""

    disk_used: float  # utilization of / (state used), 0..1
    disk_total: int
    memory_used: float  # utilization (state used), 0..1

    @classmethod
    def now(cls, path: Path) -> Baseline:
        import psutil

        fs = os.statvfs(path)
        total = fs.f_blocks * fs.f_frsize
        used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        return cls(used / total, total, psutil.virtual_memory().used / psutil.virtual_memory().total)

    def disk_threshold(self) -> float:
        return self.disk_used + GIB / self.disk_total

    def memory_threshold(self) -> float:
        import psutil

        return self.memory_used + 1.5 * GIB / psutil.virtual_memory().total


def rules(base: Baseline) -> str:
    """The rules the faults trip (1 s metrics, so short windows and no ``for``)."""
    disk, memory = base.disk_threshold(), base.memory_threshold()
    return f"""groups:
  - name: faults
    rules:
      - alert: {RULE_AGENT}
        kind: absence
        silent: 3s
        by: [host]
        severity: critical
      - alert: {RULE_CPU}
        metric: 'system.cpu.utilization{{cpu.mode!="idle"}}'
        function: avg
        window: 3s
        combine: sum
        by: [host]
        op: ">"
        value: 0.95
        recover: 0.9
        severity: warning
      - alert: {RULE_MEMORY}
        metric: 'system.memory.utilization{{system.memory.state="used"}}'
        function: last
        window: 3s
        by: [host]
        op: ">"
        value: {memory:.6f}
        severity: warning
      - alert: {RULE_DISK}
        metric: '{DISK_METRIC}'
        function: last
        window: 5s
        by: [host]
        op: ">"
        value: {disk:.6f}
        severity: warning
"""


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fix_scripts(work: Path, hog_pidfile: Path, leak_pidfile: Path, fill_dir: Path) -> list[dict[str, object]]:
    """The agent's allowlisted fixes: kill a hog's process group (its pidfile), delete the filling file.

    ``/bin/sh`` may be dash: ``kill -KILL -PGID``, no ``--``; a kill that fails exits non-zero, so
    the run records the failure instead of an ``ok`` that fixed nothing.
    """

    def killer(name: str, pidfile: Path) -> dict[str, object]:
        body = f'pid=$(cat "{pidfile}" 2>/dev/null) || exit 0\n'
        body += 'kill -0 "$pid" 2>/dev/null || exit 0\nkill -KILL "-$pid"\n'
        return {
            "name": name,
            "kind": "script",
            "path": str(script(work / f"{name}.sh", body)),
            "timeout_s": 10,
        }

    clean = script(work / "cleanup-disk.sh", f'rm -f "{fill_dir}"/*.bin\n')
    return [
        killer(KILL_HOG, hog_pidfile),
        killer(KILL_LEAK, leak_pidfile),
        {"name": CLEANUP, "kind": "script", "path": str(clean), "timeout_s": 10},
    ]
