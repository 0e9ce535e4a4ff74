"""What the responder needs from the outside world, as Protocols: a work queue, a dispatcher, a latch.

Why ports: the responder decides and acts; where its work comes from (an agent's pending events,
leased from the database, each carrying the incident it opened or joined) and how a command travels
(a signed webhook) are adapters. ``responder/`` imports no ``store`` module: ``store/workqueue.py``
implements ``WorkQueue`` over the database, ``store/wakeup.py`` implements ``Latch``,
``actions/webhook.py`` implements ``Dispatcher``, and a unit test drives the whole decision through
an in-memory queue.

Every ``WorkQueue`` write is fenced by the item's lease: once another worker took the item over,
the write raises ``LeaseLostError`` and changes nothing, so a late writer cannot finish work it lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from infragent.errors import StoreError
from infragent.model import ActionResult, ActionSpec, Decision, Event
from infragent.wire.commands import Command

if TYPE_CHECKING:
    from infragent.responder.steps import IncidentFacts, StepRunbook


class LeaseLostError(StoreError):
    """The work item's lease expired and another responder took it over."""


class IncidentDecidedError(StoreError):
    """The item's incident got a decision from another claim while this one was deciding.

    Why an error and not a value: like a lost lease it is a fence, found only inside the write that
    would store the second decision (the incident row locked); nothing was written, and the
    responder marks the item's events as having joined the incident instead.
    """

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id!r} already has a decision")
        self.incident_id = incident_id


@dataclass(frozen=True, slots=True)
class PriorDecision:
    """A decision recorded by an earlier claimant that died before finishing."""

    decision_id: str
    action: str
    target: str | None
    params: dict[str, str]
    rationale: str
    source: str
    command_id: str | None
    command_status: str | None
    #: the incident it was decided on (None: decided before incidents existed)
    incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One unit of work leased to one responder: the events to decide on and whom to answer.

    A claimed item is one agent's pending events (the cooldown and the exactly-once claim are per
    agent); ``key`` names what is leased and ``lease`` is the token that fences late writers. The
    responder reads the rest and never interprets ``key`` or ``lease``.

    Decisions are per incident: each event names its incident (``Event.incident_id``), and
    ``decided`` says which of those already have a decision since they (re)opened. The responder
    narrows a claimed item (``responder/plan.py``) to the events of one incident to decide on
    (``incident_id``) and the events that merely ``joined`` a decided incident; ``complete`` marks
    both processed, and leaves any other event of the claim pending.
    """

    key: str
    lease: str
    client_id: str
    node_id: str
    command_mode: str
    actions: tuple[ActionSpec, ...]
    webhook_url: str
    webhook_secret: str
    events: tuple[Event, ...]
    prior: PriorDecision | None = None
    #: the incident ``events`` are decided on (set by the plan; None: events without an incident)
    incident_id: str | None = None
    #: incidents of these events that have a decision since they (re)opened (as claimed)
    decided: frozenset[str] = frozenset()
    #: events to mark processed without a decision: their incident already has one
    joined: tuple[Event, ...] = ()

    @property
    def event_ids(self) -> list[str]:
        return [e.id for e in self.events]

    @property
    def incident_ids(self) -> tuple[str, ...]:
        """The incidents of the item's events, each once, in the order their first event arrived."""
        return tuple(dict.fromkeys(e.incident_id for e in self.events if e.incident_id is not None))


class WorkQueue(Protocol):
    """Leased work items and the record of what was decided and done about them."""

    def claim_next(self, worker: str, lease_s: float, now: float) -> WorkItem | None:
        """Lease the next item that is due; None when there is none."""
        ...

    def renew(self, item: WorkItem, now: float, lease_s: float) -> None:
        """Extend the lease (before a slow step such as a send)."""
        ...

    def record_decision(self, item: WorkItem, decision: Decision, now: float, actor: str) -> str | None:
        """Store the decision, and the command it implies, before anything is sent; the command id.

        Raises ``IncidentDecidedError`` (and stores nothing) when ``item.incident_id`` got a decision
        since it (re)opened: one decision per incident episode, however its events were claimed.
        """
        ...

    def start_run(
        self, item: WorkItem, runbook: StepRunbook, facts: IncidentFacts, now: float, actor: str
    ) -> str:
        """Queue a run of the step runbook ``runbook`` for ``item.incident_id``: the episode's
        decision (``IncidentDecidedError`` as ``record_decision``); the run id."""
        ...

    def mark_sent(self, item: WorkItem, command_id: str, now: float, actor: str, url: str) -> Command:
        """Mark the command sent and return it as recorded: a re-send carries the same id and body."""
        ...

    def record_result(
        self, item: WorkItem, command_id: str, result: ActionResult, now: float, actor: str
    ) -> None:
        """Store what became of a pushed command."""
        ...

    def queue_for_pull(self, item: WorkItem, command_id: str, now: float, actor: str) -> None:
        """Leave the command for the agent to fetch; it reports the result itself."""
        ...

    def complete(
        self, item: WorkItem, now: float, cooldown_until: float | None, actor: str, outcome: str
    ) -> None:
        """Mark the item's events (with ``outcome``) and its ``joined`` events (as joined to their
        incident) handled, and release it, not to be claimed before ``cooldown_until``."""
        ...

    def next_due(self, now: float) -> float | None:
        """When the earliest waiting item becomes claimable (a cooldown or lease ends); None: none."""
        ...


class Dispatcher(Protocol):
    """Delivers a command to a receiver and says what became of it; never raises for a refusal."""

    def send(self, url: str, secret: str, command: Command) -> ActionResult: ...

    def close(self) -> None: ...


class Latch(Protocol):
    """What the responder sleeps on between sweeps; any source of new work may set it."""

    def set(self) -> None: ...

    def wait(self, timeout_s: float) -> bool:
        """Sleep until set or ``timeout_s``; True when set. Clears the latch."""
        ...
