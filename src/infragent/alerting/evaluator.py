"""``Evaluator``: this process's alert evaluation, one thread, streaming at ingest and timed by a tick.

How it runs. Ingest hands every stored batch to ``observe_batch`` and the events path every stored
event to ``observe_event``; both only enqueue, so the request goes on at once. One thread owns all
in-memory state: it drains the queue, adds the samples to the windows of the tenants it holds,
evaluates the instances they touched and commits the transitions (``AlertStore.commit``) — a
transition is durable milliseconds after its batch was stored. Every ``rule_tick_s`` the same
thread renews its leases, takes free ones, reloads tenants whose rules changed and evaluates the
timers (``Tenant.due``). A batch or event of a tenant held by another process is signalled to it
(``AlertStore.signal``: PostgreSQL ``NOTIFY``), which reads the data back from the store.

Why one thread: evaluation is a few microseconds per instance; a lock around every window would
cost more than it saves, and one writer per tenant is what the lease promises anyway.

Time: ``clock`` gives the ``now`` every evaluation is stamped with (tests pass their own);
scheduling uses ``time.monotonic``, so a frozen test clock cannot stop the thread. Tests may also
drive it without the thread: ``tick(now)`` and ``run_pending(now)``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infragent.alerting.budget import Budget
from infragent.alerting.holdings import EVENT_OVERLAP_S, Holding, Loader
from infragent.alerting.instances import Change, Instance, event_hits
from infragent.alerting.intake import Intake, Round
from infragent.alerting.ports import (
    AlertStore,
    InstanceWrite,
    SeriesReader,
    Signal,
    TenantLostError,
    ValueUpdate,
)
from infragent.alerting.relay import EventRules, Outbox
from infragent.alerting.telemetry import AlertMetrics
from infragent.alerting.tenant import Tenant
from infragent.model import Event
from infragent.rules.state import AlertStatus
from infragent.rules.window import EventSample
from infragent.wire import MetricBatch

logger = logging.getLogger(__name__)


#: A lease is renewed this many times per ``lease_s`` (a holder that misses two still holds it).
RENEWALS = 3
#: Seconds between attempts to update the stored rules at start (default pack, rule files).
PREPARE_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class EvaluatorConfig:
    """``tick_s``, ``lease_s``, ``max_instances`` and ``auto_pause_s`` come from Settings
    (``rule_tick_s``, ``rule_lease_s``, ``max_alert_instances_per_tenant``, ``incident_auto_pause_s``)."""

    tick_s: float = 1.0
    lease_s: float = 15.0
    max_instances: int = 10_000
    auto_pause_s: float = 0.0
    #: every instance is evaluated this often even without data or a timer (windows slide)
    sweep_s: float = 60.0
    #: values that changed without a transition are written at most this often
    flush_s: float = 60.0
    #: at most one signal per tenant per this long (they coalesce meanwhile)
    signal_min_s: float = 0.02
    #: how long ``claims_event`` trusts a tenant's event rules read for a tenant held elsewhere
    claims_ttl_s: float = 5.0
    #: the share of one core evaluation at ingest may use before it is spread out (``budget.py``)
    budget_share: float = 0.1
    #: CPU seconds of evaluation a burst may use at once
    budget_burst_s: float = 1.0


class Stoppable(Protocol):
    def stop(self) -> None: ...


#: Starts a listener that calls back with each signal another process sent (PostgreSQL LISTEN).
Listen = Callable[[Callable[[Signal], None]], Stoppable]


class Evaluator:
    def __init__(
        self,
        store: AlertStore,
        reader: SeriesReader,
        config: EvaluatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        metrics: AlertMetrics | None = None,
        owner: str | None = None,
        listen: Listen | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.metrics = metrics or AlertMetrics()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.loader = Loader(
            store, reader, max_instances=config.max_instances, auto_pause_s=config.auto_pause_s
        )
        self._listen = listen
        self._listener: Stoppable | None = None
        self._intake = Intake()
        self._held: dict[str, Holding] = {}
        self._wants: frozenset[str] = frozenset()
        #: when to bring the stored rules up to date (default pack, rule files); None once done
        self._prepare_at: float | None = float("-inf")
        self._outbox = Outbox(store, config.signal_min_s)
        self._event_rules = EventRules(store, config.claims_ttl_s)
        self._scanned = (float("-inf"), float("-inf"))
        self._active: frozenset[str] = frozenset()
        self._budget = Budget(config.budget_share, config.budget_burst_s)
        #: tenants with instances touched by batches but not evaluated yet (over budget)
        self._behind: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what other threads call ------------------------------------------------------------------------

    def wants(self, client_id: str) -> bool:
        """Whether the tenant has rules: the HTTP process decodes a worker-stored body again only then."""
        return client_id in self._wants

    def observe_batch(self, client_id: str, batch: MetricBatch) -> None:
        """A batch was stored (not a duplicate): evaluate what it touches, here or at the holder."""
        self._intake.batch(client_id, batch)

    def observe_event(self, client_id: str, event: Event) -> None:
        """An event was stored: evaluate the tenant's event rules for it, here or at the holder."""
        self._intake.event(client_id, event)

    def claims_event(
        self, client_id: str, type: str, service: str, severity: str, data: Mapping[str, Any]
    ) -> bool:
        """Whether one of the tenant's event rules matches: then the event belongs to that rule's
        alert incident, and the events path opens no incident of its own."""
        sample = EventSample(0.0, type, service, str(severity), "", dict(data))
        return any(event_hits(rule, sample) for rule in self._event_rules.of(client_id))

    def signalled(self, signal: Signal) -> None:
        """Another process stored data of a tenant (the listener's callback)."""
        self._intake.signal(signal)

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        if self._listen is not None:
            self._listener = self._listen(self.signalled)
        self._thread = threading.Thread(target=self._run, name="alert-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and give every lease up, so another process takes over at once."""
        self._stopping.set()
        self._intake.wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        for client_id, holding in list(self._held.items()):
            try:
                self.store.release(client_id, holding.token)
            except Exception:
                logger.warning("could not release the rule lease of tenant %s", client_id, exc_info=True)
        self._held.clear()
        self.metrics.leases.set(0)

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            if time.monotonic() >= next_tick:
                self._guarded(self.tick)
                next_tick = time.monotonic() + self.config.tick_s
            wait = next_tick - time.monotonic()
            if self._outbox:
                wait = min(wait, self.config.signal_min_s)
            if self._behind:
                wait = min(wait, max(self._budget.wait_s(), 0.001))
            self._intake.wake.wait(max(0.0, wait))
            self._intake.wake.clear()
            if self._stopping.is_set():
                return
            self._guarded(self.run_pending)

    def _guarded(self, step: Callable[[float], None]) -> None:
        """The loop boundary: nothing one round raises may stop evaluation of the next."""
        try:
            step(self.clock())
        except Exception:
            logger.exception("alert evaluation step failed; going on")

    # -- holding tenants ------------------------------------------------------------------------------

    def holds(self, client_id: str) -> bool:
        h = self._held.get(client_id)
        return h is not None and h.tenant is not None

    def tenant(self, client_id: str) -> Tenant | None:
        h = self._held.get(client_id)
        return h.tenant if h is not None else None

    def _lose(self, client_id: str, why: str) -> None:
        if self._held.pop(client_id, None) is not None:
            self.metrics.lost.inc()
            logger.warning("tenant %s: alert evaluation given up (%s)", client_id, why)

    def tick(self, now: float) -> None:
        """Leases, rule reloads, timers, the auto-pause and the occasional value flush."""
        if self._prepare_at is not None and time.monotonic() >= self._prepare_at:
            try:
                self.store.prepare(now)
                self._prepare_at = None
            except Exception:  # the rules already stored are evaluated meanwhile
                logger.exception("cannot update the default rule pack and rule files; retrying in a minute")
                self._prepare_at = time.monotonic() + PREPARE_RETRY_S
        self._tick_leases(now)
        for client_id, holding in list(self._held.items()):
            try:
                self._tick_tenant(client_id, holding, now)
            except TenantLostError as exc:
                self._lose(client_id, exc.why)
            except Exception:
                logger.exception("tenant %s: alert tick failed; reloading it from the store", client_id)
                holding.tenant = None
        self._gauges()

    def _tick_leases(self, now: float) -> None:
        cfg = self.config
        due = {c: h for c, h in self._held.items() if now - h.renewed_at >= cfg.lease_s / RENEWALS}
        if due:
            renewed = self.store.renew([h.token for h in due.values()], now, cfg.lease_s)
            for client_id, holding in due.items():
                if client_id in renewed:
                    holding.renewed_at = now
                else:
                    self._lose(client_id, "the lease was taken over")
        period = cfg.lease_s / RENEWALS  # a scan of all instances: a few times per lease is enough
        mono = time.monotonic()
        if now - self._scanned[0] >= period or mono - self._scanned[1] >= period:
            self._scanned = (now, mono)  # by either clock: a test's, or a frozen one
            self._active = frozenset(self.store.tenants_with_active_alerts())
        wanted = sorted({*self.store.tenants_with_rules(), *self._active})
        self._wants = frozenset(wanted)
        for client_id in [c for c in self._held if c not in self._wants]:
            self.store.release(client_id, self._held.pop(client_id).token)
        for client_id in wanted:
            if client_id not in self._held and (
                token := self.store.acquire(client_id, self.owner, now, cfg.lease_s)
            ):
                self._held[client_id] = Holding(token, event_cursor=now, renewed_at=now)
        signatures = self.store.rule_signatures(sorted(self._held))
        for client_id, holding in list(self._held.items()):
            signature = signatures.get(client_id)
            if holding.tenant is None or signature != holding.signature:
                try:
                    holding.tenant = self.loader.load(client_id, now)
                except Exception:
                    logger.exception(
                        "tenant %s: cannot load its rules and windows; retrying next tick", client_id
                    )
                    holding.tenant = None
                    continue
                holding.signature = signature
                holding.last_sweep = float("-inf")  # the new state is evaluated whole at once
                holding.dirty, holding.accepted = set(), None
                self._event_rules.publish(client_id, [e.rule for e in holding.tenant.event_rules])

    def _tick_tenant(self, client_id: str, holding: Holding, now: float) -> None:
        tenant = holding.tenant
        if tenant is None:
            return
        self._event_rules.publish(client_id, [e.rule for e in tenant.event_rules])
        if tenant.host_rules:
            tenant.note_hosts(self.store.hosts_last_seen(client_id))
        sweep = now - holding.last_sweep >= self.config.sweep_s
        if sweep:
            holding.last_sweep = now
        cpu = time.thread_time()
        changes = tenant.retire(now) + self._evaluate(tenant, tenant.due(now, sweep=sweep), now)
        self._budget.spend(time.thread_time() - cpu)
        if holding.missed_events:
            holding.missed_events = False
            for event in self.store.events_since(client_id, holding.event_cursor - EVENT_OVERLAP_S):
                if holding.first_sight(event.event_id, event.at):
                    changes.extend(tenant.observe_event(event, now))
        deferred = [tenant.deferred_write(i) for i in tenant.deferred(now)]
        self._commit(client_id, holding, changes, now, extra=deferred)
        if holding.tenant is not None and now - holding.last_flush >= self.config.flush_s:
            holding.last_flush = now
            moved = tenant.unsaved_values()
            if moved:
                updates = [ValueUpdate(*i.key, i.state.last_value, i.state.last_eval) for i in moved]
                self.store.flush_values(client_id, holding.token, updates)
                for i in moved:
                    i.saved_value = i.state.last_value

    # -- rounds: what the queue brought -------------------------------------------------------------

    def run_pending(self, now: float) -> None:
        """Handle everything queued so far: batches, events and signals, tenant by tenant."""
        rounds = self._intake.drain()
        for client_id in dict.fromkeys([*rounds, *sorted(self._behind)]):
            try:
                self._round(client_id, rounds.get(client_id, Round()), now)
            except TenantLostError as exc:
                self._lose(client_id, exc.why)
            except Exception:
                logger.exception("tenant %s: alert evaluation failed; reloading it from the store", client_id)
                if (holding := self._held.get(client_id)) is not None:
                    holding.tenant = None
        self._behind.intersection_update(self._held)
        self._outbox.send()

    def _round(self, client_id: str, r: Round, now: float) -> None:
        holding = self._held.get(client_id)
        hosts = {b.batch.node_id for b in r.batches} | r.noted
        if holding is None or holding.tenant is None:
            # held elsewhere: tell the holder (a signal that came from it is not sent back);
            # held here but not loaded yet: the load reads the samples from the store, and the
            # events are read back after it
            if holding is None and client_id in self._wants and (hosts or r.events):
                self._outbox.add(client_id, hosts, bool(r.events))
            elif holding is not None and (r.events or any(s.events for s in r.signals)):
                holding.missed_events = True
            return
        tenant = holding.tenant
        cpu = time.thread_time()
        for b in r.batches:
            holding.dirty |= tenant.observe(b.batch.node_id, b.batch.series)
        if any(s.all_hosts for s in r.signals):
            holding.dirty |= self.loader.refresh(tenant, None, now)
        elif refresh := {h for s in r.signals for h in s.hosts} | r.noted:
            holding.dirty |= self.loader.refresh(tenant, refresh, now)
        if r.batches:
            first = min(b.accepted for b in r.batches)
            holding.accepted = first if holding.accepted is None else min(holding.accepted, first)
        events = r.events
        if any(s.events for s in r.signals):
            events = [*events, *self.store.events_since(client_id, holding.event_cursor - EVENT_OVERLAP_S)]
        changes: list[Change] = []
        accepted = None
        if holding.dirty and self._budget.available():
            changes = self._evaluate(tenant, holding.dirty, now)
            holding.dirty, accepted, holding.accepted = set(), holding.accepted, None
            self._behind.discard(client_id)
        elif holding.dirty:
            self._behind.add(client_id)  # over budget: evaluated together once it has refilled
        for event in events:
            if holding.first_sight(event.event_id, event.at):
                changes.extend(tenant.observe_event(event, now))
        self._budget.spend(time.thread_time() - cpu)
        self._commit(client_id, holding, changes, now, accepted=accepted)

    def _evaluate(
        self, tenant: Tenant, instances: Sequence[Instance] | set[Instance], now: float
    ) -> list[Change]:
        if not instances:
            return []
        start = time.perf_counter()
        changes, n = tenant.evaluate_all(instances, now)
        self.metrics.eval_seconds.observe(time.perf_counter() - start)
        self.metrics.evaluations.inc(n)
        return changes

    def _commit(
        self,
        client_id: str,
        holding: Holding,
        changes: list[Change],
        now: float,
        *,
        accepted: float | None = None,
        extra: Sequence[InstanceWrite] = (),
    ) -> None:
        tenant = holding.tenant
        if tenant is None or not (changes or extra):
            return
        writes = [tenant.write_for(c) for c in changes] + list(extra)
        try:
            written = self.store.commit(client_id, holding.token, writes, now)
        except TenantLostError:
            raise
        except Exception:
            logger.exception("tenant %s: cannot write alert state; reloading it from the store", client_id)
            holding.tenant = None
            return
        for w in writes:
            tenant.committed(w, written.get(w.key))
            for t in w.transitions:
                self.metrics.transitions.labels(t.to_status.value).inc()
        if accepted is not None and any(w.transitions for w in writes):
            self.metrics.latency.observe(time.monotonic() - accepted)

    def _gauges(self) -> None:
        pending = firing = total = 0
        for holding in self._held.values():
            if holding.tenant is not None:
                p, f, n = holding.tenant.counts()
                pending, firing, total = pending + p, firing + f, total + n
                if holding.tenant.refused:
                    self.metrics.refused.inc(holding.tenant.refused)
                    holding.tenant.refused = 0
        self.metrics.leases.set(len(self._held))
        self.metrics.instances.labels(AlertStatus.PENDING.value).set(pending)
        self.metrics.instances.labels(AlertStatus.FIRING.value).set(firing)
        self.metrics.instances.labels(AlertStatus.INACTIVE.value).set(total - pending - firing)
