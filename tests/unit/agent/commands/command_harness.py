"""Shared pieces of the agent command tests: a settable clock, real scripts, a restartable agent.

Why real scripts that append to a marker file: "nothing ran" is proven by the file being absent,
and "ran once" by it holding exactly one line — no mocks between the processor and the process.
"""

from __future__ import annotations

import json
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infragent import signing
from infragent.agent.allowlist import Allowlist
from infragent.agent.commands import CommandProcessor
from infragent.agent.executor import Executor
from infragent.agent.ledger import Ledger

SECRET = signing.new_secret()
NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_script(path: Path, text: str) -> Path:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def marker_lines(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


def command_body(
    command_id: str, action: str, params: dict[str, str], issued_at: float, **extra: Any
) -> bytes:
    payload = {
        "command_id": command_id,
        "action": action,
        "target": "web-1",
        "params": params,
        "event_ids": ["ev-1"],
        "reason": "test",
        "issued_at": issued_at,
        **extra,
    }
    return json.dumps(payload).encode()


@dataclass
class Agent:
    """A CommandProcessor over a data dir that can be 'restarted' (closed and reopened)."""

    data_dir: Path
    marker: Path
    allowlist: Allowlist
    clock: Clock = field(default_factory=Clock)
    systemd_dir: Path = Path("/nonexistent/run/systemd/system")
    ledger: Ledger = field(init=False)
    executor: Executor = field(init=False)
    processor: CommandProcessor = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.ledger = Ledger(self.data_dir, now=self.clock())
        self.executor = Executor(systemd_dir=self.systemd_dir)
        self.processor = CommandProcessor(
            SECRET, self.allowlist, self.ledger, self.executor, clock=self.clock
        )

    def stop(self) -> None:
        self.executor.close()
        self.ledger.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def signed(
        self,
        action: str,
        params: dict[str, str],
        command_id: str | None = None,
        secret: str = SECRET,
        **extra: Any,
    ) -> tuple[dict[str, str], bytes]:
        cid = command_id or f"cmd-{uuid.uuid4().hex}"
        body = command_body(cid, action, params, self.clock(), **extra)
        return signing.signed_headers(secret, cid, body, now=self.clock()), body

    def send(
        self, action: str, params: dict[str, str], command_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        return self.processor.handle(*self.signed(action, params, command_id))


def allowlist_config(tmp_path: Path, marker: Path) -> list[dict[str, Any]]:
    mark = write_script(tmp_path / "mark.sh", f'printf "%s\\n" "$*" >> {marker}\necho "marked $*"\n')
    sleeper = write_script(tmp_path / "sleeper.sh", f"sleep 30 &\necho $! > {tmp_path / 'child.pid'}\nwait\n")
    chatty = write_script(
        tmp_path / "chatty.sh", "i=0\nwhile [ $i -lt 2000 ]; do echo 0123456789abcdef; i=$((i+1)); done\n"
    )
    return [
        {
            "name": "mark",
            "kind": "script",
            "path": str(mark),
            "args": ["--name", "{name}"],
            "params": {"name": "[a-z0-9-]{1,32}"},
        },
        {
            "name": "restart",
            "kind": "systemd",
            "op": "restart",
            "unit": "{unit}.service",
            "params": {"unit": "[a-z0-9][a-z0-9@_-]{0,63}"},
        },
        {"name": "hang", "kind": "script", "path": str(sleeper), "timeout_s": 0.5},
        {"name": "chatty", "kind": "script", "path": str(chatty), "output_cap_bytes": 100},
    ]
