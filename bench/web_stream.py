"""The live stream under load: ``clients`` browsers watching one host while its agent sends every second.

Each client is what ``static/js/live.js`` is on a host page: one ``GET /api/v1/stream?host=H`` with a
user's session cookie, read line by line as Server-Sent Events. A writer POSTs one native batch of
``H``'s agent series per second, at a random point of each second (``POST /api/v1/metrics``, the
tenant's key), every sample stamped with the wall clock just before the POST. For every ``metrics``
event a client receives, the lag is receive time - the event's ``ts`` (so it includes the POST
itself, the server storing the batch and noticing it, and the event's trip). An event is counted
delivered when its ``ts`` is one the writer sent; expected = batches accepted x clients connected.
A client whose stream ends (or fails) before the end is dropped; one refused at connect (a status
other than 200) is refused.

Server CPU: utime+stime of the server process and its children from ``/proc/PID/stat``, over a
baseline (the writer alone, no client) and over the loaded window, each per second of wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import psutil
from web_seed import HOST, agent_batch

from infragent.auth import sessions as tokens
from infragent.wire import CONTENT_TYPE, encode_batch

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, from ``/proc/PID/stat``."""
    pids = [pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(rest[11]) + int(rest[12])  # fields 14 and 15: utime, stime (clock ticks)
    return total / CLK_TCK


def settle(pid: int, *, below: float = 0.05, timeout_s: float = 60.0) -> float:
    """Wait until the server uses less than ``below`` CPU s/s over a second (start-up work done, a
    previous part's writes absorbed), at most ``timeout_s``; returns the last second's rate."""
    deadline = time.monotonic() + timeout_s
    while True:
        c0 = proc_cpu(pid)
        time.sleep(1.0)
        rate = proc_cpu(pid) - c0
        if rate < below or time.monotonic() > deadline:
            return rate


@dataclass
class ClientLog:
    status: int = 0
    connected: bool = False
    ended_early: bool = False
    #: time.time() when the stream ended early
    ended_at: float = 0.0
    error: str = ""
    heartbeats: int = 0
    events: dict[str, int] = field(default_factory=dict)
    #: (data ts, receive time) of each metrics event
    metrics: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class StreamResult:
    clients: list[ClientLog]
    posted: list[float]
    post_rtt: list[float]
    post_errors: int
    base_cpu_per_s: float
    load_cpu_per_s: float
    load_seconds: float
    client_cpu_s: float
    #: time.time() when the writer started
    started: float = 0.0

    @property
    def lags(self) -> list[float]:
        sent = set(self.posted)
        return [rx - ts for c in self.clients for ts, rx in c.metrics if ts in sent]

    def delivered(self) -> tuple[int, int]:
        """(events whose ts the writer sent, expected: accepted batches x clients that connected)."""
        sent = set(self.posted)
        got = sum(len({ts for ts, _ in c.metrics} & sent) for c in self.clients)
        return got, len(self.posted) * sum(c.connected for c in self.clients)


def _ts(data: dict[str, object]) -> float | None:
    raw = data.get("ts")
    if not isinstance(raw, int | float):
        return None
    return float(raw) / 1000 if raw > 1e11 else float(raw)  # seconds, or milliseconds


async def watch(
    client: httpx.AsyncClient,
    url: str,
    cookie: str,
    log: ClientLog,
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """One browser's stream until ``stop``; records every event."""
    headers = {"cookie": f"{tokens.COOKIE}={cookie}", "accept": "text/event-stream"}
    try:
        async with client.stream("GET", url, headers=headers) as r:
            log.status = r.status_code
            if r.status_code != 200:
                await r.aread()
                log.error = r.text[:200]
                return
            log.connected = True
            ready.set()
            name, data = "message", []
            async for line in r.aiter_lines():
                if line.startswith(":"):
                    log.heartbeats += 1
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "":
                    if data:
                        log.events[name] = log.events.get(name, 0) + 1
                        if name == "metrics":
                            ts = _ts(json.loads("\n".join(data)))
                            if ts is not None:
                                log.metrics.append((ts, time.time()))
                    name, data = "message", []
                if stop.is_set():
                    return
        if not stop.is_set():
            log.ended_early, log.ended_at = True, time.time()
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        if not stop.is_set():
            log.ended_early, log.ended_at = True, time.time()
            log.error = f"{type(e).__name__}: {e}"[:200]
    finally:
        ready.set()


async def write(
    client: httpx.AsyncClient, base: str, key: str, seconds: float
) -> tuple[list[float], list[float], int]:
    """One batch of ``HOST`` per second for ``seconds``: (accepted ts, round trips, failures)."""
    posted: list[float] = []
    rtt: list[float] = []
    errors = 0
    headers = {"authorization": f"Bearer {key}", "content-type": CONTENT_TYPE, "content-encoding": "gzip"}
    start = time.monotonic()
    rng = random.Random(7)
    k = 0
    # one batch in each second, at a random point of it: a server that polls for changes on a fixed
    # period would otherwise see every batch at the same phase, and the lag would be one constant
    while (due := start + k + rng.uniform(0.0, 0.9)) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        ts = round(time.time(), 3)
        body = encode_batch(agent_batch(HOST, np.array([ts]), 42))
        t0 = time.perf_counter()
        try:
            r = await client.post(f"{base}/api/v1/metrics", content=body, headers=headers)
            ok = r.status_code // 100 == 2
        except httpx.HTTPError:
            ok = False
        rtt.append(time.perf_counter() - t0)
        if ok:
            posted.append(ts)
        else:
            errors += 1
        k += 1
    return posted, rtt, errors


async def run_async(
    port: int, pid: int, key: str, cookies: list[str], clients: int, seconds: float, baseline: float
) -> StreamResult:
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    timeout = httpx.Timeout(10.0, read=120.0)
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout) as http,
        httpx.AsyncClient(timeout=30) as poster,
    ):
        await write(poster, base, key, 2.0)  # the tenant's first batches: caches, the evaluator's state
        await asyncio.to_thread(settle, pid)
        base_cpu = 0.0
        if baseline > 0:
            c0, w0 = proc_cpu(pid), time.monotonic()
            await write(poster, base, key, baseline)
            base_cpu = (proc_cpu(pid) - c0) / (time.monotonic() - w0)

        logs = [ClientLog() for _ in range(clients)]
        stop = asyncio.Event()
        readies = [asyncio.Event() for _ in range(clients)]
        url = f"{base}/api/v1/stream?host={HOST}"
        tasks = [
            asyncio.create_task(watch(http, url, cookies[i % len(cookies)], logs[i], readies[i], stop))
            for i in range(clients)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 30)
        own0 = time.process_time()
        c0, w0, began = proc_cpu(pid), time.monotonic(), time.time()
        posted, rtt, errors = await write(poster, base, key, seconds)
        await asyncio.sleep(2.0)  # the last batch's events are still on their way
        wall = time.monotonic() - w0
        load_cpu = (proc_cpu(pid) - c0) / wall
        own = time.process_time() - own0
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return StreamResult(logs, posted, rtt, errors, base_cpu, load_cpu, wall, own, began)


def run(
    port: int, pid: int, key: str, cookies: list[str], clients: int, seconds: float, baseline: float
) -> StreamResult:
    return asyncio.run(run_async(port, pid, key, cookies, clients, seconds, baseline))
