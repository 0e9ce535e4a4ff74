"""The README's tour, pasted into a shell: it must end with a signed command that really ran.

Why a test: a tour that breaks when pasted is the first thing a new user meets. This test takes
the ``sh`` blocks of the "A five-minute tour" section of README.md exactly as written and runs them,
in order, in one bash. The only things it sets are the server's address (``IA``, as printed by
``infragent up`` on port 0) and the example app's port (``HOOK_PORT``, from a held
``PortReservation``), both of which the tour reads with defaults. It then checks the outcome the
README promises.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import reserve_port

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## A five-minute tour"


def tour_blocks(text: str) -> list[str]:
    """The ``sh`` code blocks between the tour's heading and the next ``## `` heading."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def test_the_tour_has_the_steps_a_newcomer_needs() -> None:
    text = README.read_text()
    assert text.index("make up") < text.index(SECTION)  # the two set-up commands stay at the top
    script = "\n".join(tour_blocks(text))
    assert "API_KEY=$(" in script  # captured from the registration answer, not pasted by hand
    assert "/api/v1/events/$EVENT_ID" in script  # the event detail: decision, command, audit
    assert "infragent.sdk.example" in script  # a receiver, so the command really runs
    assert "jq" not in script


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``infragent up`` on port 0 (no local agent), fresh data dir; yields the URL it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env["INFRAGENT_DATA_DIR"] = str(tmp_path / "server")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infragent", "up", "--port", "0", "--no-agent"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # blocks until the line arrives or the process ends
            found = re.search(r"is up at (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None, f"infragent up did not start (exit {proc.poll()})"
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_pasted_tour_ends_with_a_command_that_ran(server: str, tmp_path: Path) -> None:
    blocks = tour_blocks(README.read_text())
    assert len(blocks) >= 4
    # The tour runs from the root of a clone, where `make up` made .venv: give it one here.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    with reserve_port() as hook:
        env.update(IA=server, HOOK_PORT=str(hook.port), HOME=str(tmp_path))
        # -e: a failing step fails the test where it failed, instead of somewhere later.
        script = "set -eu -o pipefail\n" + "\n".join(blocks)
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the example app runs in the background of this bash
        )
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # whatever the tour left running
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "command:  restart done - restarted web (pretend restart #1)" in out, out
    # What the README says the last block prints is what it prints (the example app's start-up
    # line comes before it: step 2 runs it in the background of the same shell).
    promised = promised_output(README.read_text())
    assert [line for line in out.splitlines() if line][-len(promised) :] == promised, out


def promised_output(text: str) -> list[str]:
    """The lines of the plain code block after "The last block prints:" in the tour."""
    found = re.search(r"The last block prints:\n\n```\n(.*?)```", text[text.index(SECTION) :], re.DOTALL)
    assert found is not None
    return found.group(1).splitlines()
