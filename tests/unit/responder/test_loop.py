"""The responder's decision loop through its ports alone: an in-memory work queue, no database.

Why: the responder imports no store module, so its behaviour (decide per incident, record before
sending, queue or push, re-send after a crash, cooldown, join decided incidents) can be shown against
any ``WorkQueue``. The queue here keeps what a real one would store, fences writes by lease, and
refuses a second decision on an incident's episode as the store does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import pytest

from infragent.model import ActionResult, ActionSpec, Decision, Event, Severity
from infragent.responder.loop import Responder, ResponderConfig
from infragent.responder.ports import IncidentDecidedError, LeaseLostError, PriorDecision, WorkItem
from infragent.responder.runbooks import DEFAULT_RUNBOOKS
from infragent.wire.commands import Command

NOW = 1_800_000_000.0
ACTOR = "responder:t"


@dataclass
class Latch:
    event: threading.Event = field(default_factory=threading.Event)

    def set(self) -> None:
        self.event.set()

    def wait(self, timeout_s: float) -> bool:
        fired = self.event.wait(timeout_s)
        self.event.clear()
        return fired


@dataclass
class MemoryQueue:
    """A ``WorkQueue`` over lists: items wait in ``due``; every write is appended to ``log``.

    ``decided`` are the incidents with a decision this episode: a claimed item is told which of its
    incidents they are, and a second decision on one is refused, as the store does."""

    due: list[WorkItem]
    leased: dict[str, WorkItem] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    results: dict[str, ActionResult] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)
    completed: list[tuple[str, float | None, str]] = field(default_factory=list)
    decided: set[str] = field(default_factory=set)
    #: event id → what marked it processed (the outcome, or "joined <incident>")
    processed: dict[str, str] = field(default_factory=dict)

    def _fence(self, item: WorkItem) -> None:
        held = self.leased.get(item.key)
        if held is None or held.lease != item.lease:
            raise LeaseLostError(f"lease on {item.key!r} was lost")

    def claim_next(self, worker: str, lease_s: float, now: float) -> WorkItem | None:
        if not self.due:
            return None
        item = self.due.pop(0)
        item = replace(item, decided=frozenset(self.decided & set(item.incident_ids)))
        self.leased[item.key] = item
        return item

    def renew(self, item: WorkItem, now: float, lease_s: float) -> None:
        self._fence(item)

    def record_decision(self, item: WorkItem, decision: Decision, now: float, actor: str) -> str | None:
        self._fence(item)
        if item.incident_id is not None:
            if item.incident_id in self.decided:
                raise IncidentDecidedError(item.incident_id)
            self.decided.add(item.incident_id)
        self.decisions.append(decision)
        command_id = f"cmd-{len(self.decisions)}" if decision.acts else None
        self.log.append(("decision.made", decision.action))
        return command_id

    def mark_sent(self, item: WorkItem, command_id: str, now: float, actor: str, url: str) -> Command:
        self._fence(item)
        self.log.append(("command.sent", command_id))
        decision = self.decisions[-1] if self.decisions else _from_prior(item)
        return Command(
            command_id=command_id,
            action=decision.action,
            target=decision.target,
            params=decision.params,
            event_ids=item.event_ids,
            reason=decision.rationale,
            issued_at=now,
        )

    def record_result(
        self, item: WorkItem, command_id: str, result: ActionResult, now: float, actor: str
    ) -> None:
        self.results[command_id] = result
        self.log.append(("command.result", result.status))

    def queue_for_pull(self, item: WorkItem, command_id: str, now: float, actor: str) -> None:
        self._fence(item)
        self.log.append(("command.queued", command_id))

    def complete(
        self, item: WorkItem, now: float, cooldown_until: float | None, actor: str, outcome: str
    ) -> None:
        self._fence(item)
        del self.leased[item.key]
        self.completed.append((item.key, cooldown_until, outcome))
        self.processed |= {e.id: outcome for e in item.events}
        self.processed |= {e.id: f"joined {e.incident_id}" for e in item.joined}

    def next_due(self, now: float) -> float | None:
        return None


def _from_prior(item: WorkItem) -> Decision:
    assert item.prior is not None
    p = item.prior
    return Decision("runbook", p.action, p.rationale, target=p.target, params=p.params)


@dataclass
class Receiver:
    """A ``Dispatcher`` that answers every command with ``answer`` and keeps what it was sent."""

    answer: ActionResult
    sent: list[tuple[str, Command]] = field(default_factory=list)

    def send(self, url: str, secret: str, command: Command) -> ActionResult:
        self.sent.append((url, command))
        return self.answer

    def close(self) -> None:
        pass


def _event(
    id_: str = "ev-1", type_: str = "app_down", incident: str | None = None, key: str = "agent-1"
) -> Event:
    return Event(id_, "c1", key, "host-1/web", type_, "web", Severity.CRITICAL, {}, NOW, incident_id=incident)


def _item(
    type_: str = "app_down",
    *,
    mode: str = "push",
    prior: PriorDecision | None = None,
    key: str = "agent-1",
    events: tuple[Event, ...] | None = None,
    lease: str = "token",
) -> WorkItem:
    return WorkItem(
        key=key,
        lease=lease,
        client_id="c1",
        node_id="host-1/web",
        command_mode=mode,
        actions=(ActionSpec("restart", {"name": r"[a-z]+"}),),
        webhook_url="http://receiver.invalid/hook",
        webhook_secret="whsec_x",
        events=events if events is not None else (_event(type_=type_, key=key),),
        prior=prior,
    )


def _responder(queue: MemoryQueue, receiver: Receiver) -> Responder:
    return Responder(
        queue,
        receiver,
        wakeup=Latch(),
        runbooks=DEFAULT_RUNBOOKS,
        config=ResponderConfig(lease_s=30, cooldown_s=300, sweep_interval_s=60),
        clock=lambda: NOW,
        worker="t",
    )


def test_a_runbook_decision_is_recorded_then_pushed_then_completed_with_a_cooldown() -> None:
    queue = MemoryQueue([_item()])
    receiver = Receiver(ActionResult(status="ok", output="restarted web", http_status=200))
    assert _responder(queue, receiver).drain() == 1
    assert queue.log == [("decision.made", "restart"), ("command.sent", "cmd-1"), ("command.result", "ok")]
    [(url, command)] = receiver.sent
    assert url == "http://receiver.invalid/hook"
    assert (command.command_id, command.action, command.target, command.event_ids) == (
        "cmd-1",
        "restart",
        "web",
        ["ev-1"],
    )
    assert queue.completed == [("agent-1", NOW + 300, "restart:ok")]


def test_no_runbook_and_no_llm_escalates_and_sends_nothing() -> None:
    queue = MemoryQueue([_item("disk_full")])
    receiver = Receiver(ActionResult(status="ok"))
    _responder(queue, receiver).drain()
    assert [d.action for d in queue.decisions] == ["escalate"]
    assert receiver.sent == [] and queue.completed == [("agent-1", None, "escalate")]


def test_a_pull_mode_agent_gets_its_command_queued_not_pushed() -> None:
    queue = MemoryQueue([_item(mode="pull")])
    receiver = Receiver(ActionResult(status="ok"))
    _responder(queue, receiver).drain()
    assert queue.log == [("decision.made", "restart"), ("command.queued", "cmd-1")]
    assert receiver.sent == [] and queue.completed == [("agent-1", NOW + 300, "restart:queued")]


PRIOR = PriorDecision("d-1", "restart", "web", {}, "runbook matched", "runbook", "cmd-0", "sent")


@pytest.mark.parametrize(
    ("answer", "already_delivered"),
    [
        # The receiver's wording is its own; the code is the contract.
        (ActionResult("rejected", "seen that one before, thanks", http_status=401, code="replay"), True),
        # The old English word without the code is not a replay: a plain refusal.
        (
            ActionResult("rejected", "webhook-id 'cmd-0' was already received (replay)", http_status=401),
            False,
        ),
        (ActionResult("rejected", "no signature matches", http_status=401, code="bad_signature"), False),
    ],
)
def test_a_resend_after_a_crash_is_judged_by_the_reason_code(
    answer: ActionResult, already_delivered: bool
) -> None:
    queue = MemoryQueue([_item(prior=PRIOR)])
    receiver = Receiver(answer)
    _responder(queue, receiver).drain()
    assert queue.decisions == []  # the recorded decision is re-used, not re-made
    assert [c.command_id for _, c in receiver.sent] == ["cmd-0"]  # the same id, re-sent
    result = queue.results["cmd-0"]
    assert ("did not run twice" in result.output) is already_delivered
    assert result.status == ("error" if already_delivered else "rejected")


def test_a_lost_lease_stops_the_item_and_the_loop_goes_on() -> None:
    first, second = _item(key="agent-1"), _item(key="agent-2")
    queue = MemoryQueue([first, second])

    class Thief(Receiver):
        def send(self, url: str, secret: str, command: Command) -> ActionResult:
            queue.leased.pop(first.key, None)  # another responder took agent-1 over mid-send
            return super().send(url, secret, command)

    responder = _responder(queue, Thief(ActionResult(status="ok", http_status=200)))
    assert responder.drain() == 1  # agent-2 only; agent-1 is the other responder's now
    assert queue.completed == [("agent-2", NOW + 300, "restart:ok")]


# -- incidents -------------------------------------------------------------------------------------


def test_a_storm_split_across_claims_is_one_decision_and_every_event_joins_it() -> None:
    """However a storm's events fall into claims (and whatever the cooldown), its incident is
    decided once; every later event is processed as having joined it."""
    claims = [
        _item(events=tuple(_event(f"ev-{c}-{i}", incident="inc-1") for i in range(n)), lease=f"l{c}")
        for c, n in enumerate([3, 1, 5, 2])
    ]
    queue = MemoryQueue(claims)
    receiver = Receiver(ActionResult(status="ok", http_status=200))
    assert _responder(queue, receiver).drain() == 11
    assert [d.action for d in queue.decisions] == ["restart"] and len(receiver.sent) == 1
    assert len(queue.processed) == 11
    joined = [e for e, how in queue.processed.items() if how == "joined inc-1"]
    assert sorted(joined) == sorted(f"ev-{c}-{i}" for c, n in [(1, 1), (2, 5), (3, 2)] for i in range(n))
    assert [outcome for _, _, outcome in queue.completed] == ["restart:ok", "joined", "joined", "joined"]
    assert [until for _, until, _ in queue.completed] == [NOW + 300, None, None, None]


def test_a_reopened_incident_is_decided_again() -> None:
    queue = MemoryQueue([_item(events=(_event("ev-1", incident="inc-1"),), lease="l1")])
    receiver = Receiver(ActionResult(status="ok", http_status=200))
    responder = _responder(queue, receiver)
    responder.drain()
    queue.decided.discard("inc-1")  # the incident ended and reopened: its new episode is undecided
    queue.due.append(_item(events=(_event("ev-2", incident="inc-1"),), lease="l2"))
    responder.drain()
    assert [d.action for d in queue.decisions] == ["restart", "restart"]
    assert queue.processed == {"ev-1": "restart:ok", "ev-2": "restart:ok"}


def test_one_incident_per_item_the_other_waits_for_the_next_claim() -> None:
    """Two undecided incidents of one agent: the oldest is decided, the other stays pending (after
    the cooldown it is claimed again), so the agent never gets two actions in one cooldown."""
    events = (
        _event("ev-1", "app_down", incident="inc-a"),
        _event("ev-2", "disk_full", incident="inc-b"),
        _event("ev-3", "app_down", incident="inc-a"),
        _event("ev-4", "app_down", incident="inc-old"),
    )
    queue = MemoryQueue([_item(events=events)])
    queue.decided.add("inc-old")
    receiver = Receiver(ActionResult(status="ok", http_status=200))
    assert _responder(queue, receiver).drain() == 3
    assert queue.processed == {"ev-1": "restart:ok", "ev-3": "restart:ok", "ev-4": "joined inc-old"}
    assert [c.event_ids for _, c in receiver.sent] == [["ev-1", "ev-3"]]


def test_an_incident_decided_by_another_claim_meanwhile_is_joined_not_decided_twice() -> None:
    queue = MemoryQueue([_item(events=(_event("ev-1", incident="inc-1"),))])
    receiver = Receiver(ActionResult(status="ok", http_status=200))
    responder = _responder(queue, receiver)
    original = responder.decide

    def decide_while_another_claim_decides(item: WorkItem) -> Decision:
        queue.decided.add("inc-1")  # a claim of another agent's event of this incident won the race
        return original(item)

    responder.decide = decide_while_another_claim_decides  # type: ignore[method-assign]
    assert responder.drain() == 1
    assert queue.decisions == [] and receiver.sent == []
    assert queue.processed == {"ev-1": "joined inc-1"}
    assert queue.completed == [("agent-1", None, "joined")]


def test_a_crashed_claimants_command_is_resent_although_its_incident_counts_as_decided() -> None:
    prior = replace(PRIOR, incident_id="inc-1")
    queue = MemoryQueue([_item(prior=prior, events=(_event("ev-1", incident="inc-1"),))])
    queue.decided.add("inc-1")  # by the crashed claimant's decision
    receiver = Receiver(ActionResult(status="ok", http_status=200))
    _responder(queue, receiver).drain()
    assert queue.decisions == [] and [c.command_id for _, c in receiver.sent] == ["cmd-0"]
    assert queue.processed == {"ev-1": "restart:ok"}
