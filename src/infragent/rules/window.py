"""What one alert instance is evaluated over: its group's samples, last sign of life, and events.

Why a value handed in rather than read by the rule: ``evaluate`` stays pure (no store, no clock);
the evaluator (``infragent.alerting``) keeps these windows from ingest and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _empty() -> F64:
    return np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SeriesSamples:
    """One series of the group: its labels (``host`` included) and samples in time order."""

    labels: dict[str, str]
    ts: F64 = field(default_factory=_empty)
    values: F64 = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class EventSample:
    """An event as an event rule sees it."""

    at: float
    type: str
    service: str
    severity: str
    node_id: str
    data: dict[str, object] = field(default_factory=dict)
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """Everything ``evaluate`` may look at for one instance at ``now``.

    ``series``: the group's series, each holding at least the rule's window (more is allowed: the
    kernel cuts at ``now - window``); ``last_seen``: the newest sample time or agent heartbeat of
    the group (absence rules); ``events``: events of the group received since the last evaluation.
    """

    labels: dict[str, str]
    series: tuple[SeriesSamples, ...] = ()
    last_seen: float | None = None
    events: tuple[EventSample, ...] = ()
