"""SIGKILL a real process that appends or acknowledges, at random moments, then check the spool.

The child prints a line after each call returned (flushed), so every printed line is a promise the
spool must keep: appended means present exactly once and intact; acknowledged means gone.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from infragent.agent.spool import Spool

ROUNDS = 10
SEGMENT_BYTES = 4096

APPENDER = """
import sys
from pathlib import Path
from infragent.agent.spool import Spool

spool = Spool(Path(sys.argv[1]), segment_bytes=int(sys.argv[3]))
i = int(sys.argv[2])
while True:
    seq = spool.append(f"b{i}", i, (f"<{i:06d}>".encode() * 80)[: 50 + i % 500])
    print(seq, i, flush=True)
    i += 1
"""

ACKER = """
import sys
from pathlib import Path
from infragent.agent.spool import Spool

spool = Spool(Path(sys.argv[1]), segment_bytes=int(sys.argv[2]))
while records := spool.peek(3):
    spool.ack(records)
    print(*(r.seq for r in records), flush=True)
"""


def payload(i: int) -> bytes:
    return (f"<{i:06d}>".encode() * 80)[: 50 + i % 500]


def run_and_kill(args: list[str], lines_before_kill: int, rng: random.Random) -> list[str]:
    """Start the child, SIGKILL it after some reported lines; return every complete line it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    try:
        assert child.stdout is not None
        for _ in range(lines_before_kill):
            line = child.stdout.readline()
            if not line.endswith("\n"):
                break
            seen.append(line.rstrip("\n"))
        time.sleep(rng.uniform(0.0, 0.005))  # land anywhere in the write / fsync / rename cycle
    finally:
        child.kill()
        rest, errors = child.communicate(timeout=30)
    assert child.returncode in (-9, 0), errors
    return seen + rest.split("\n")[:-1]  # the last piece is cut short, or empty


def test_appends_reported_before_sigkill_survive_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    reported: dict[int, int] = {}  # i -> seq
    next_i = 0
    for _ in range(ROUNDS):
        child_lines = run_and_kill(
            [APPENDER, str(tmp_path), str(next_i), str(SEGMENT_BYTES)], rng.randint(1, 40), rng
        )
        for line in child_lines:
            seq, i = map(int, line.split())
            reported[i] = seq

        with Spool(tmp_path, segment_bytes=SEGMENT_BYTES) as spool:
            records = spool.peek(100_000)
        by_i = {int(r.batch_id[1:]): r for r in records}
        assert len(by_i) == len(records), "a record is present twice"
        assert [r.seq for r in records] == sorted({r.seq for r in records})
        for i, record in by_i.items():
            assert (record.points, record.payload) == (i, payload(i))
        for i, seq in reported.items():
            assert i in by_i, f"b{i} was reported appended but is gone"
            assert by_i[i].seq == seq
        next_i = max(by_i, default=-1) + 1  # an append that returned but was not reported still counts
    assert len(reported) >= ROUNDS


def test_acks_reported_before_sigkill_stay_acked_and_nothing_unacked_vanishes(tmp_path: Path) -> None:
    rng = random.Random(7)
    with Spool(tmp_path, segment_bytes=SEGMENT_BYTES) as spool:
        everything = [spool.append(f"b{i}", i, payload(i)) for i in range(500)]
    acked: set[int] = set()
    for _ in range(ROUNDS):
        lines = run_and_kill([ACKER, str(tmp_path), str(SEGMENT_BYTES)], rng.randint(1, 12), rng)
        for line in lines:
            acked.update(map(int, line.split()))

        with Spool(tmp_path, segment_bytes=SEGMENT_BYTES) as spool:
            pending = [r.seq for r in spool.peek(100_000)]
            for r in spool.peek(100_000):
                assert r.payload == payload(int(r.batch_id[1:]))
        assert not acked & set(pending), "an acknowledged record came back"
        gone = len(everything) - len(pending)
        assert pending == everything[gone:], "a record that was never acknowledged vanished"
        reported_through = max((everything.index(s) + 1 for s in acked), default=0)
        assert 0 <= gone - reported_through <= 3  # at most the one batch acked but not yet reported
    assert acked
