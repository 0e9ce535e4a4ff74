"""``agent run --once`` reports current CPU: two readings of /proc/stat a short sample apart.

The canned tree proves the shape (one first reading, one wait of 0.25 to 0.5 s, one second reading,
the figures from the difference, not "since boot"); the real run proves the outcome on this host:
a spinning child shows up as busy CPU.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infragent.agent.collectors.cpu import CpuCollector, proc_stat_cpu_times
from infragent.agent.main import print_once
from infragent.agent.settings import load_settings

#: user nice system idle iowait irq softirq steal guest guest_nice, in USER_HZ ticks
BOOT = "cpu  100000 0 50000 800000 1000 0 0 0 0 0\ncpu0 50000 0 25000 400000 500 0 0 0 0 0\n"
#: 0.5 s later on 2 busy CPUs: +60 user, +20 system, +20 idle ticks
LATER = "cpu  100060 0 50020 800020 1000 0 0 0 0 0\ncpu0 50030 0 25010 400010 500 0 0 0 0 0\n"


def cpu_of(document: dict[str, object]) -> dict[str, float]:
    metrics = document["metrics"]
    assert isinstance(metrics, list)
    return {m["attributes"]["cpu.mode"]: m["value"] for m in metrics if m["name"] == "system.cpu.utilization"}


def test_proc_stat_reader(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(BOOT)
    ticks = os.sysconf("SC_CLK_TCK")
    times = proc_stat_cpu_times(tmp_path)
    assert times["user"] == pytest.approx(100000 / ticks)
    assert times["idle"] == pytest.approx(800000 / ticks)
    assert set(times) == {
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guest_nice",
    }
    collector = CpuCollector(proc_root=tmp_path)
    collector.prime()
    (tmp_path / "stat").write_text(LATER)
    assert {p.attribute_map["cpu.mode"]: p.value for p in collector.collect(0.0)}["user"] == pytest.approx(
        0.6
    )


def test_once_takes_two_readings_a_short_sample_apart(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text(BOOT)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the machine works while --once waits
        waits.append(seconds)
        (proc / "stat").write_text(LATER)

    out = io.StringIO()
    settings = load_settings(
        {"NODE_ID": "once", "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "data")}, None, require_server=False
    )
    print_once(settings, proc_root=proc, sleep=sleep, out=out)
    assert len(waits) == 1 and 0.25 <= waits[0] <= 0.5
    cpu = cpu_of(json.loads(out.getvalue()))
    # The difference of the two readings; since boot it would be idle 0.84, user 0.11.
    assert cpu["user"] == pytest.approx(0.6)
    assert cpu["system"] == pytest.approx(0.2)
    assert cpu["idle"] == pytest.approx(0.2)


def test_once_on_this_host_sees_a_busy_child() -> None:
    """One spinning process on this host: --once must report at least half a CPU's worth busy."""
    with subprocess.Popen(
        [sys.executable, "-c", "print('spinning', flush=True)\nwhile True:\n    pass\n"],
        stdout=subprocess.PIPE,
        text=True,
    ) as spinner:
        try:
            assert spinner.stdout is not None and spinner.stdout.readline() == "spinning\n"
            env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
            proc = subprocess.run(
                [sys.executable, "-m", "infragent.agent", "run", "--once"],
                env={**env, "NODE_ID": "busy-host"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            spinner.kill()
    assert proc.returncode == 0, proc.stderr
    cpu = cpu_of(json.loads(proc.stdout))
    cpus = os.cpu_count() or 1
    assert 1.0 - cpu["idle"] >= 0.5 / cpus, cpu
