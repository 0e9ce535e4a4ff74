"""Spool throughput for 2,000-point batches (~20 KB payloads): appends/s and acked records/s.

The anchor is the floor any durable append pays on this disk: a bare ``os.write`` + ``fdatasync``
of the same payload to a plain file. The ratio says what the framing, CRC, bookkeeping and segment
rollover cost on top. Prints figures only.

    .venv/bin/python bench/spool_bench.py [--dir PATH] [--count N]

Run it with ``--dir`` on the disk the agent will use: a tmpfs /tmp makes fsync free.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from infragent.agent.spool import Spool

PAYLOAD = (b'{"name":"cpu.usage","labels":{"core":"0"},"t":1700000000.0,"v":12.5}' * 300)[:20_000]


def anchor(directory: Path, count: int) -> float:
    fd = os.open(directory / "anchor.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, PAYLOAD)
            os.fdatasync(fd)
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)


def appends(directory: Path, count: int) -> float:
    with Spool(directory) as spool:
        start = time.perf_counter()
        for i in range(count):
            spool.append(f"batch-{i}", 2000, PAYLOAD)
        return count / (time.perf_counter() - start)


def acks(directory: Path, per_ack: int) -> float:
    with Spool(directory) as spool:
        total = spool.stats.records
        start = time.perf_counter()
        while records := spool.peek(per_ack):
            spool.ack(records)
        return total / (time.perf_counter() - start)


def reopen(directory: Path) -> float:
    start = time.perf_counter()
    with Spool(directory):
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        mb = len(PAYLOAD) / 1e6
        floor = anchor(root, args.count)
        print(f"anchor write+fdatasync     {floor:9.0f} ops/s  {floor * mb:7.1f} MB/s")
        rate = appends(root / "a", args.count)
        ratio = rate / floor
        print(f"spool append (fsynced)     {rate:9.0f} rec/s  {rate * mb:7.1f} MB/s  {ratio:5.2f}x anchor")
        print(f"reopen, {args.count} records      {reopen(root / 'a') * 1000:9.1f} ms")
        for per_ack in (1, 50):
            directory = root / f"ack{per_ack}"
            appends(directory, args.count)
            rate = acks(directory, per_ack)
            print(f"peek+ack, {per_ack:2d} per ack       {rate:9.0f} rec/s  {rate * mb:7.1f} MB/s")


if __name__ == "__main__":
    main()
