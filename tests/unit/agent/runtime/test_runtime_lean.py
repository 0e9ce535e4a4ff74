"""The agent's start-up measures change when modules load, never what they do.

Each case runs in a fresh interpreter: this test process already imported everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from infragent.agent.main import DeferredProcessor, check_secret
from infragent.errors import ConfigError


def run_python(code: str, **env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INFRAGENT_", "MALLOC_"))}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_a_deferred_module_loads_at_its_first_use() -> None:
    out = run_python(
        """
        import sys
        from infragent.agent import lean
        lean.defer(("ipaddress",))
        import ipaddress
        import urllib.parse  # imports ipaddress at its top
        print(isinstance(sys.modules["ipaddress"], lean.DeferredModule))
        print(urllib.parse.urlsplit("http://[::1]:8080/x").hostname)  # checks the host with ipaddress
        real = sys.modules["ipaddress"]
        print(isinstance(real, lean.DeferredModule), ipaddress.IPv6Address is real.IPv6Address)
        from ipaddress import ip_address
        print(ip_address("10.0.0.1").is_private)
        """
    )
    assert out == ["True", "::1", "False", "True", "True"]


def test_dataclasses_without_a_docstring_still_get_one() -> None:
    """``dataclasses`` describes such a class with ``inspect.signature``: the real ``inspect`` loads."""
    out = run_python(
        """
        import sys
        from infragent.agent import lean
        lean.defer()
        from dataclasses import dataclass

        @dataclass
        class Documented:
            '''Why this class exists.'''
            a: int

        print(isinstance(sys.modules["inspect"], lean.DeferredModule))

        @dataclass
        class Bare:
            a: int

        print(isinstance(sys.modules["inspect"], lean.DeferredModule), repr(Bare.__doc__))
        """
    )
    assert out == ["True", "False", "'Bare(a:", "int)'"]


def test_tracebacks_read_source_lines_through_a_deferred_tokenize(tmp_path: Path) -> None:
    script = tmp_path / "boom.py"
    script.write_text("def boom():\n    raise ValueError('bang')  # this line is shown\n")
    out = run_python(
        f"""
        import sys, traceback
        sys.path.insert(0, {str(tmp_path)!r})
        from infragent.agent import lean
        lean.defer()
        import boom
        try:
            boom.boom()
        except ValueError:
            print("shown" if "this line is shown" in traceback.format_exc() else "missing")
        """
    )
    assert out == ["shown"]


def test_a_hidden_module_makes_its_importers_fall_back() -> None:
    out = run_python(
        """
        import sys
        from infragent.agent import lean
        lean.hide()
        import hashlib
        print("_hashlib" in sys.modules and sys.modules["_hashlib"] is None)
        print(hashlib.sha256(b"abc").hexdigest()[:16])
        """
    )
    assert out == ["True", "ba7816bf8f01cfea"]  # the SHA-256 of "abc", from CPython's own code


def test_the_entry_runs_with_one_malloc_arena_and_hides_it_from_children() -> None:
    out = run_python(
        """
        import os, runpy, sys
        sys.argv = ["infragent.agent", "run", "--help"]
        if os.environ.get("_INFRAGENT_AGENT_ARENA") is None and "MALLOC_ARENA_MAX" not in os.environ:
            print("first", flush=True)  # before execv replaces this process
        else:
            print("reexecuted")
        try:
            runpy.run_module("infragent.agent", run_name="__main__")
        except SystemExit:
            pass
        print(os.environ.get("MALLOC_ARENA_MAX", "unset"), sys.modules.get("_hashlib", "loaded"))
        """
    )
    # The first process re-executes itself (its output ends there); the second runs the agent with
    # the variable removed again from its environment.
    assert out[:2] == ["first", "reexecuted"]
    assert out[-2:] == ["unset", "None"]


def test_a_bad_webhook_secret_still_stops_start_up(tmp_path: Path) -> None:
    """The processor is built at the first command, but its secret is checked at start, as before."""
    config = tmp_path / "agent.json"
    config.write_text('{"actions": [{"name": "flush", "kind": "http", "url": "http://127.0.0.1:1/f"}]}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "infragent.agent", "run", "--config", str(config)],
        env=env
        | {
            "INFRAGENT_SERVER_URL": "http://127.0.0.1:1",
            "INFRAGENT_API_KEY": "k",
            "INFRAGENT_WEBHOOK_SECRET": "whsec_not*base64",
            "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "data"),
            "HEALTH_CHECK_PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "INFRAGENT_WEBHOOK_SECRET" in proc.stderr and "not valid base64" in proc.stderr
    with pytest.raises(ConfigError, match="not valid base64"):
        check_secret("whsec_not*base64")
    check_secret("whsec_" + "A" * 44)


def test_the_deferred_processor_is_built_once_whoever_asks_first() -> None:
    built: list[object] = []
    barrier = threading.Barrier(4)

    def build() -> object:
        built.append(object())
        return built[-1]

    deferred = DeferredProcessor(build)  # type: ignore[arg-type]
    assert built == []
    got: list[object] = []

    def ask() -> None:
        barrier.wait()
        got.append(deferred.get())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(built) == 1 and got == built * 4
