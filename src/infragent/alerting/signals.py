"""Signals between server processes: "tenant X has new data, you hold it, look again".

Why ``NOTIFY``: a batch may reach any server process behind a load balancer, but only the lease
holder evaluates the tenant. The receiving process stores the batch, then sends
``pg_notify('infragent_alerting', payload)`` (delivered at commit); the holder's listener hands the
signal to its evaluator, which reads the hosts' new samples back from the metric store (or the
tenant's new events) before evaluating. SQLite has no such channel and one server per file, so
there is nothing to signal.

The payload is compact JSON: ``{"c": client id, "h": [hosts], "e": events?}``; when the hosts do
not fit PostgreSQL's 8000-byte limit, ``"a": true`` asks for every host instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import orjson
import psycopg

from infragent.alerting.ports import Signal
from infragent.store.alerts import MAX_PAYLOAD, NOTIFY_CHANNEL
from infragent.store.engine import normalize_url

logger = logging.getLogger(__name__)


def encode_signal(signal: Signal) -> str:
    body: dict[str, object] = {"c": signal.client_id}
    if signal.events:
        body["e"] = True
    if signal.all_hosts:
        body["a"] = True
    elif signal.hosts:
        body["h"] = sorted(signal.hosts)
    text = orjson.dumps(body).decode()
    if len(text.encode()) > MAX_PAYLOAD:
        return orjson.dumps({"c": signal.client_id, "a": True, "e": signal.events}).decode()
    return text


def decode_signal(payload: str) -> Signal | None:
    """The signal in ``payload``, or None for anything malformed (logged, never raised)."""
    try:
        body = orjson.loads(payload)
        hosts = body.get("h", [])
        if not isinstance(body["c"], str) or not all(isinstance(h, str) for h in hosts):
            raise TypeError("client id and hosts must be strings")
        return Signal(body["c"], frozenset(hosts), bool(body.get("e")), bool(body.get("a")))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        logger.warning("ignoring a malformed alerting signal: %.200r", payload)
        return None


class PgSignalListener(threading.Thread):
    """LISTENs on the alerting channel and calls back with each signal; reconnects after a failure.

    A signal lost while reconnecting costs latency only: the holder's windows still get the samples
    at its next load, and the tick keeps every timer.
    """

    def __init__(self, url: str, on_signal: Callable[[Signal], None]) -> None:
        super().__init__(name="alerting-listen", daemon=True)
        self.dsn = normalize_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
        self.on_signal = on_signal
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            signal = decode_signal(note.payload)
                            if signal is not None:
                                self.on_signal(signal)
            except psycopg.Error:
                logger.exception("alerting LISTEN connection failed; retrying in 1 s")
                self.stopping.wait(1.0)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


def pg_listen(url: str) -> Callable[[Callable[[Signal], None]], PgSignalListener]:
    """A ``Listen`` for the evaluator: starts a listener on ``url`` and waits until it listens."""

    def start(on_signal: Callable[[Signal], None]) -> PgSignalListener:
        listener = PgSignalListener(url, on_signal)
        listener.start()
        listener.ready.wait(5)
        return listener

    return start
