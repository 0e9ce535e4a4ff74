"""The executor with real processes: no shell, clean env, group kill on timeout, output cap."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from command_harness import write_script
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from infragent.agent.allowlist import Allowlist, ArgvCall, HttpCall
from infragent.agent.executor import Executor
from support.servers import serve


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[Executor]:
    running = Executor(systemd_dir=tmp_path / "no-systemd")
    yield running
    running.close()


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """True once ``pid`` no longer exists or is a zombie (it was killed; reaping is init's job)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_exit_codes_and_combined_output(executor: Executor, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.sh", "echo out\necho err >&2\nexit ${1:-0}\n")
    ok = executor.run_argv([str(script)], 5, 1024)
    assert (ok.status, ok.exit_code, ok.output, ok.truncated) == ("ok", 0, "out\nerr\n", False)
    failed = executor.run_argv([str(script), "3"], 5, 1024)
    assert (failed.status, failed.exit_code) == ("error", 3)


def test_arguments_reach_the_program_verbatim_without_a_shell(executor: Executor) -> None:
    result = executor.run_argv(["/bin/echo", "$(id); rm -rf / `id` a  b"], 5, 1024)
    assert result.output == "$(id); rm -rf / `id` a  b\n"


def test_environment_is_clean(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRAGENT_AGENT_SECRET", "do-not-leak")
    result = executor.run_argv(["env"], 5, 4096)
    names = sorted(line.split("=", 1)[0] for line in result.output.splitlines())
    assert names == ["LANG", "LC_ALL", "PATH"]
    assert executor.run_argv(["pwd"], 5, 100).output == "/\n"


def test_relative_and_missing_programs_are_errors(executor: Executor) -> None:
    assert "not found" in executor.run_argv(["bin/echo"], 5, 100).output
    assert "not found" in executor.run_argv(["no-such-program-xyz"], 5, 100).output
    result = executor.run_argv(["/nonexistent/prog"], 5, 100)
    assert result.status == "error" and "cannot start" in result.output


def test_timeout_kills_the_whole_process_group(executor: Executor, tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = write_script(tmp_path / "hang.sh", f"sleep 30 &\necho $! > {child_pid}\necho started\nwait\n")
    started = time.monotonic()
    result = executor.run_argv([str(script)], 0.5, 1024)
    assert result.status == "timeout" and result.exit_code is None
    assert time.monotonic() - started < 5
    assert result.output.startswith("started\n") and "killed after 0.5 s" in result.output
    assert _gone(int(child_pid.read_text()))


def test_output_cap_truncates_and_still_drains(executor: Executor, tmp_path: Path) -> None:
    script = write_script(tmp_path / "big.sh", "head -c 200000 /dev/zero | tr '\\0' 'x'\necho\nexit 0\n")
    result = executor.run_argv([str(script)], 10, 1000)
    assert (result.status, result.exit_code, result.truncated) == ("ok", 0, True)
    assert result.output.startswith("x" * 1000 + "\n[output truncated at 1000 bytes]")


def test_background_child_holding_the_pipe_does_not_stall_a_finished_command(
    executor: Executor, tmp_path: Path
) -> None:
    child_pid = tmp_path / "bg.pid"
    script = write_script(tmp_path / "bg.sh", f"sleep 30 &\necho $! > {child_pid}\necho done\n")
    try:
        result = executor.run_argv([str(script)], 10, 1024)
        assert (result.status, result.output) == ("ok", "done\n")
        assert result.duration_ms < 5000
    finally:
        os.kill(int(child_pid.read_text()), 9)


def test_systemd_without_systemd_is_a_clear_error(executor: Executor) -> None:
    call = ArgvCall(
        "restart", "systemd", ("systemctl", "restart", "--no-ask-password", "--", "x.service"), 5, 100
    )
    result = executor.run(call)
    assert result.status == "error"
    assert result.output.startswith("systemd is not running on this host")


def test_process_restart_stops_the_old_instance_and_starts_a_new_one(
    executor: Executor, tmp_path: Path
) -> None:
    pidfile = tmp_path / "worker.pid"
    worker = write_script(tmp_path / "worker.sh", f"echo $$ > {pidfile}\nexec sleep 30\n")
    allowlist = Allowlist.from_config(
        [
            {
                "name": "restart-worker",
                "kind": "process",
                "pidfile": str(pidfile),
                "start": [str(worker)],
                "start_grace_s": 0.2,
            }
        ]
    )
    call = allowlist.render("restart-worker", {})
    first = executor.run(call)
    assert first.status == "ok" and "no running instance found" in first.output
    old = _wait_pid(pidfile, None)
    second = executor.run(call)
    new = _wait_pid(pidfile, old)
    try:
        assert second.status == "ok", second.output
        assert f"sent SIGTERM to pid {old}" in second.output
        assert _gone(old)
        assert psutil.Process(new).is_running()
    finally:
        proc = psutil.Process(new)
        proc.kill()
        proc.wait(5)  # our child: reap it


def _wait_pid(pidfile: Path, not_equal: int | None) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        if text and int(text) != not_equal:
            return int(text)
        time.sleep(0.02)
    raise AssertionError("worker did not write its pidfile")


def _local_admin_app() -> Starlette:
    async def ok(request: Request) -> Response:
        return PlainTextResponse(f"flushed via {request.method}")

    async def big(request: Request) -> Response:
        return PlainTextResponse("y" * 10_000)

    async def fail(request: Request) -> Response:
        return PlainTextResponse("nope", status_code=503)

    return Starlette(
        routes=[
            Route("/ok", ok, methods=["POST"]),
            Route("/big", big, methods=["POST"]),
            Route("/fail", fail, methods=["POST"]),
        ]
    )


def test_http_actions_call_loopback_with_cap_and_status(executor: Executor) -> None:
    with serve(_local_admin_app()) as url:
        ok = executor.run(HttpCall("flush", "POST", f"{url}/ok", 5, 1024))
        assert (ok.status, ok.output, ok.exit_code) == ("ok", "HTTP 200\nflushed via POST", None)
        big = executor.run(HttpCall("flush", "POST", f"{url}/big", 5, 100))
        assert big.truncated and big.output.startswith("HTTP 200\n" + "y" * 100 + "\n[output truncated")
        fail = executor.run(HttpCall("flush", "POST", f"{url}/fail", 5, 100))
        assert (fail.status, fail.output) == ("error", "HTTP 503\nnope")
    down = executor.run(HttpCall("flush", "POST", url + "/ok", 1, 100))  # the server has stopped
    assert down.status == "error" and "ConnectError" in down.output
    remote = executor.run(HttpCall("flush", "POST", "http://192.0.2.1/ok", 1, 100))
    assert remote.status == "error" and "non-loopback" in remote.output
