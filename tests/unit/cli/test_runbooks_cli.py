"""``infragent runbooks check`` through typer's ``CliRunner``, and once as the real command in a
subprocess (so its registration in ``cli/main.py`` is tested too): valid files print a line each
and exit 0; any problem is ``FILE:LINE:COL: message`` on standard error and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from infragent.cli.runbooks import runbooks_app

GOOD = """\
runbooks:
  - name: restart-web
    match: {event_type: app_down, service: "web*"}
    steps:
      - {id: restart, act: restart, approval: required}
      - {id: verify, verify: any, timeout: 2m}
  - name: legacy
    match: {type: app_recovered}
    action: none
"""
BROKEN = """\
runbooks:
  - name: restart-web
    steps:
      - {id: restart, act: restart, on_failure: goto retry}
      - {id: verify, verify: sometimes}
"""


def _check(*files: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(runbooks_app, ["check", *map(str, files)])
    return result.exit_code, result.stdout, result.stderr


def test_valid_files_exit_0_with_a_line_each(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text("runbooks:\n  - {name: x, steps: [{wait: 5s}]}\n")
    code, out, err = _check(tmp_path / "a.yaml", tmp_path / "b.yaml")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"{tmp_path / 'a.yaml'}: 2 runbooks, 2 steps OK",
        f"{tmp_path / 'b.yaml'}: 1 runbooks, 1 steps OK",
    ]


def test_every_problem_of_every_file_is_printed_and_the_exit_is_2(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BROKEN)
    code, out, err = _check(tmp_path / "bad.yaml", tmp_path / "good.yaml", tmp_path / "missing.yaml")
    assert code == 2
    bad = tmp_path / "bad.yaml"
    assert err.splitlines() == [
        f"{bad}:4:49: runbooks[0].steps[0].on_failure: goto 'retry': no step has this id"
        " (ids: restart, verify)",
        f"{bad}:5:30: runbooks[0].steps[1].verify: the signal is alert, check or any, not 'sometimes'",
        f"{tmp_path / 'missing.yaml'}:1:1: cannot read: No such file or directory",
    ]
    assert out.splitlines() == [f"{tmp_path / 'good.yaml'}: 2 runbooks, 2 steps OK"]


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"runbooks: \xff\n")
    code, _, err = _check(tmp_path / "bin.yaml")
    assert code == 2 and err.startswith(f"{tmp_path / 'bin.yaml'}:1:1: cannot read: ")


def test_the_infragent_command_has_runbooks_check(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BROKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    done = subprocess.run(
        [sys.executable, "-m", "infragent", "runbooks", "check", str(tmp_path / "bad.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[0].startswith(f"{tmp_path / 'bad.yaml'}:4:49: ")
