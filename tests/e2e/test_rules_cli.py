"""``infragent rules check|test`` as CI and editors run them: the real command, in a subprocess, on
the shipped pack and on broken files (exit 2 with ``FILE:LINE:COL``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

GOOD = """\
groups:
  - name: web
    rules:
      - alert: ApiLatency
        kind: threshold
        metric: 'http.server.duration{service="api"}'
        function: avg
        window: 5m
        op: ">"
        value: 0.5
        for: 1m
"""
BROKEN = """\
groups:
  - name: web
    rules:
      - alert: ApiLatency
        kind: threshold
        metric: 'http.server.duration{service="api"}'
        function: median
        window: -5m
        op: ">"
        value: 0.5
"""
TESTS = """\
rule_files: [good.yaml]
evaluation_interval: 10s
tests:
  - name: slow for a minute fires
    interval: 10s
    input_series:
      - series: 'http.server.duration{host="a", service="api"}'
        values: '0.1x5 0.9x30'
    end: 5m
    expect:
      # the 5-minute average passes 0.5 at 2m (6 samples of 0.1, 7 of 0.9: 0.53)
      - {at: 2m, alert: ApiLatency, labels: {host: a, service: api}, from: inactive, to: pending}
      - {at: 3m, alert: ApiLatency, labels: {host: a, service: api}, from: pending, to: firing}
"""


def _rules(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "infragent", "rules", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_the_shipped_pack() -> None:
    done = _rules("check", "--default")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "infragent/rules/default_pack.yaml: 3 groups, 9 rules OK"


def test_test_the_shipped_pack() -> None:
    done = _rules("test", "--default")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("PASS  ") for line in lines) >= 9
    assert not any(line.startswith("FAIL") for line in lines)
    assert lines[-1].endswith("tests passed") and " 0 of " not in lines[-1]


def test_check_good_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    ok = _rules("check", "good.yaml", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "good.yaml: 1 groups, 1 rules OK", ok.stderr
    bad = _rules("check", "good.yaml", "broken.yaml", "missing.yaml", cwd=tmp_path)
    assert bad.returncode == 2
    assert "good.yaml: 1 groups, 1 rules OK" in bad.stdout
    errors = bad.stderr.splitlines()
    assert any(line.startswith("broken.yaml:7:19: ") and "median" in line for line in errors), errors
    assert any(line.startswith("broken.yaml:8:17: ") and "negative" in line for line in errors), errors
    assert any(line.startswith("missing.yaml: cannot read") for line in errors), errors


def test_test_passing_failing_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "good_test.yaml").write_text(TESTS)
    passed = _rules("test", "good_test.yaml", cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASS  good_test.yaml: slow for a minute fires" in passed.stdout

    (tmp_path / "wrong_test.yaml").write_text(TESTS.replace("at: 3m", "at: 2m30s"))
    failed = _rules("test", "wrong_test.yaml", cwd=tmp_path)
    assert failed.returncode == 1
    assert "FAIL  wrong_test.yaml: slow for a minute fires" in failed.stdout
    assert "-2m30s ApiLatency" in failed.stdout and "+3m ApiLatency" in failed.stdout  # the diff

    (tmp_path / "broken_test.yaml").write_text(TESTS.replace("0.1x5 0.9x30", "0.1x5 zz"))
    broken = _rules("test", "good_test.yaml", "broken_test.yaml", cwd=tmp_path)
    assert broken.returncode == 2
    assert any(line.startswith("broken_test.yaml:8:") for line in broken.stderr.splitlines()), broken.stderr


def test_no_file_is_a_usage_error() -> None:
    for command in ("check", "test"):
        done = _rules(command)
        assert done.returncode == 2 and "--default" in done.stderr


def test_the_pack_ships_as_package_data(tmp_path: Path) -> None:
    """From a zip (no package directory on disk), as from a wheel: the pack is read with
    importlib.resources and its tests run from a temporary copy."""
    src = Path(__file__).resolve().parents[2] / "src"
    archive = Path(shutil.make_archive(str(tmp_path / "infragent"), "zip", src, "infragent"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env["PYTHONPATH"] = str(archive)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import infragent, sys; sys.argv[0] = 'infragent'; "
            "print(infragent.__file__, file=sys.stderr); "
            "from infragent.cli.main import main; sys.argv[1:] = ['rules', 'test', '--default']; main()",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert str(archive) in done.stderr  # the zip was imported, not the source tree
    assert done.returncode == 0, done.stdout + done.stderr
    assert "infragent-pack-" in done.stdout
    assert re.search(r"(\d+) of \1 tests passed", done.stdout.splitlines()[-1]), done.stdout
