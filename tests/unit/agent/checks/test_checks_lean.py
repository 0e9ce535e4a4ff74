"""An agent with checks and actions stays lean: no pydantic, httpx or web framework in its process.

Why a subprocess: ``sys.modules`` of the test process holds everything pytest and the other tests
imported. A fresh interpreter, started the way ``python -m infragent.agent`` starts (``lean.hide()`` and
``lean.defer()``), loads the agent's config of 3 checks and 2 actions, starts the real runtime
(shipping to a closed port, which only makes it retry), waits until every check has a result and
the HTTP action has run, and reports what it imported.

What only a command needs is loaded by the first command, not at start: the command processor with
signature verification (``infragent.signing``, ``hashlib``) and the ledger (``sqlite3``, 1.3 MiB
resident). The script records what was loaded before it hands the pull handler one signed command,
and that the command was recorded in the ledger before it ran. psutil and ``subprocess`` are not
loaded at all (the collectors read ``/proc``; no action ran a program), and the modules
``lean.defer()`` stands in for are still stand-ins.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infragent.agent import lean

#: Packages (and their submodules) an agent process must not import; ``http.client`` and ``email``
#: are the stdlib's heavy HTTP client, which the agent's own ``agent/http.py`` replaces.
HEAVY = (
    "pydantic",
    "pydantic_core",
    "httpx",
    "httpcore",
    "starlette",
    "fastapi",
    "sqlalchemy",
    "anyio",
    "http.client",
    "email",
    "unicodedata",  # with encodings.idna and stringprep: a str host given to getaddrinfo
    "stringprep",
    "concurrent",  # the check runner starts a thread per probe run instead of a pool
    "psutil",  # the collectors and the process check read /proc
    "subprocess",  # imported by the first action or check that runs a program
)
#: Loaded by the first command only (``main.DeferredProcessor``).
FOR_COMMANDS = ("infragent.agent.commands", "infragent.signing", "hashlib", "sqlite3")

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from infragent.agent import lean

    lean.hide()  # as python -m infragent.agent does (it also re-executes itself with one arena)
    lean.defer()
    from pathlib import Path

    from infragent.agent.allowlist import Allowlist
    from infragent.agent.executor import Executor
    from infragent.agent.main import command_setup
    from infragent.agent.runtime import Agent
    from infragent.agent.settings import load_settings

    config, data_dir, server, heavy_roots, for_commands = sys.argv[1:6]
    environ = {
        "INFRAGENT_SERVER_URL": server,
        "INFRAGENT_API_KEY": "ik_test",
        "INFRAGENT_WEBHOOK_SECRET": "whsec_" + "A" * 44,
        "INFRAGENT_AGENT_DATA_DIR": data_dir,
        "HEALTH_CHECK_PORT": "0",
        "NODE_ID": "lean",
    }
    settings = load_settings(environ, Path(config))
    handler, _processor, actions = command_setup(settings)
    agent = Agent(settings, command_handler=handler, actions=actions)
    agent.start()
    deadline = time.monotonic() + 30
    while any(s.last_result is None for s in agent.checks.states.values()):
        assert time.monotonic() < deadline, agent.checks.states
        time.sleep(0.01)
    executor = Executor()
    flushed = executor.run(Allowlist.from_config(settings.actions).render("flush-cache", {}))
    executor.close()
    states = {name: s.last_result.status for name, s in agent.checks.states.items()}
    before_command = sorted(m for m in for_commands.split(",") if m in sys.modules)
    deferred = sorted(m for m in lean.DEFERRED if isinstance(sys.modules.get(m), lean.DeferredModule))
    from infragent import signing

    body = json.dumps({"command_id": "cmd-1", "action": "flush-cache", "target": "lean", "params": {},
                       "event_ids": [], "reason": "test", "issued_at": time.time()}).encode()
    pulled = handler(signing.signed_headers(environ["INFRAGENT_WEBHOOK_SECRET"], "cmd-1", body), body)
    entry = _processor.get()._ledger.get("cmd-1")
    agent.stop()
    roots = heavy_roots.split(",")
    heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in roots))
    print(json.dumps({"heavy": heavy, "states": states, "flush": flushed.status,
                      "actions": sorted(a["name"] for a in actions), "handler": handler is not None,
                      "before_command": before_command, "deferred": deferred,
                      "sqlite_after_command": "sqlite3" in sys.modules,
                      "command_status": pulled["result"]["status"],
                      "ledger_state": entry.state if entry else None}))
    """
)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = b"status: healthy"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_checks_and_actions_load_no_pydantic_httpx_or_web_framework(tmp_path: Path, web: int) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        tcp_port = listener.getsockname()[1]
        config = tmp_path / "agent.yaml"
        config.write_text(
            textwrap.dedent(
                f"""
                checks:
                  - {{type: http, name: web, url: "http://127.0.0.1:{web}/health",
                     body_regex: "healthy", interval_s: 10}}
                  - {{type: tcp, name: db, host: 127.0.0.1, port: {tcp_port}, interval_s: 10}}
                  - {{type: process, name: self, process_name: {Path(sys.executable).name}, interval_s: 10}}
                actions:
                  - name: restart-app
                    kind: systemd
                    op: restart
                    unit: "{{unit}}.service"
                    params: {{unit: "[a-z0-9-]+"}}
                  - {{name: flush-cache, kind: http, method: POST,
                     url: "http://127.0.0.1:{web}/admin/flush"}}
                """
            )
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(config),
                str(tmp_path / "data"),
                f"http://127.0.0.1:{_closed_port()}",
                ",".join(HEAVY),
                ",".join(FOR_COMMANDS),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"an agent with checks and actions imported {report['heavy']}"
    assert report["states"]["web"] == "up" and report["states"]["db"] == "up"
    assert report["states"]["self"] == "up"  # this interpreter, matched by its argv[0]
    assert report["flush"] == "ok"
    assert report["actions"] == ["flush-cache", "restart-app"] and report["handler"] is True
    assert report["before_command"] == [], "loaded before any command arrived"
    assert report["deferred"] == sorted(lean.DEFERRED), "a deferred module was loaded"
    assert report["sqlite_after_command"] is True
    assert report["command_status"] == "ok" and report["ledger_state"] == "done"
