"""What the agent does with each answer of its server: the verdict table and the long pause.

Why a table of its own on top of :func:`infragent.backoff.classify_status`: the shared policy says
whether sending the same request again can help; the agent must also say what becomes of the data,
and one rule holds everywhere: **no answer of the server deletes data**. Who is to blame decides:

======================================  ============  ============================================
answer                                  verdict       what the agent does
======================================  ============  ============================================
2xx, 409 (the server already holds     ack           the batch leaves the spool
this ``batch_id``)
408, 425, 429, 5xx (also 501, 505),     retry         keep it, retry with the normal backoff
1xx, 3xx, nonsense                                    (capped at ``INFRAGENT_AGENT_RETRY_MAX_S``)
400, 413, 422                           dead_letter   the server says the batch itself is
                                                      malformed: no retry can fix it, so it goes to
                                                      the dead-letter file (counted), and the
                                                      batches behind it are sent
any other 4xx (401, 403, 404, 405,      pause         the agent's configuration is wrong (key,
407, 410, 415 …)                                      scope, URL, proxy): keep everything on disk,
                                                      pause that loop 60 s growing to 10 min, say
                                                      why on ``/health/ready`` and ``/metrics``
======================================  ============  ============================================

Why a long pause and not the normal backoff: a wrong key is fixed by a person, not by time, and
every refused request costs the server an authentication and a log line; a fleet of agents with a
revoked key must not hammer it every few seconds. A restart (or a fixed key) starts from scratch,
so a repaired agent ships at once. Pure: time and randomness come in through ``Backoff``.
"""

from __future__ import annotations

import threading
from typing import Literal

from infragent.backoff import Backoff, classify_status

Verdict = Literal["ack", "retry", "pause", "dead_letter"]

#: Answers that blame the request body itself (RFC 9110 15.5.1, 15.5.14, 15.5.21).
MALFORMED_STATUSES = frozenset({400, 413, 422})
#: The long pause after an auth or routing refusal: the first wait, and the cap of its growth.
PAUSE_MIN_S = 60.0
PAUSE_CAP_S = 600.0


def classify(status: int) -> Verdict:
    """What a loop does with what it sent after the server answered ``status`` (module table)."""
    if status == 409:
        return "ack"
    verdict = classify_status(status)
    if verdict == "success":
        return "ack"
    if verdict == "final" and 400 <= status <= 499:
        return "dead_letter" if status in MALFORMED_STATUSES else "pause"
    return "retry"


def pause_backoff() -> Backoff:
    """A fresh long-pause backoff for one loop (60 s window, doubling, capped at 10 min)."""
    return Backoff(base_s=PAUSE_MIN_S, cap_s=PAUSE_CAP_S)


def pause_delay(backoff: Backoff, retry_after: float | None) -> float:
    """Seconds to pause after a refusal: at least the backoff's base (or the server's ``Retry-After``).

    With ``pause_backoff()`` the draw is the shared full-jitter window (60, 120, 240 … 600 s) with
    the minute as a floor, so the first pause is one minute and later ones spread up to ten, never
    beyond. Tests pass a backoff with a tiny base.
    """
    floor = backoff.base_s if retry_after is None else max(backoff.base_s, retry_after)
    return backoff.next_delay(floor)


class Refusals:
    """Which of the agent's loops the server currently refuses, and why; for health and metrics.

    Each loop (metrics, events, register, commands) reports ``refused`` on a pause verdict and
    ``accepted`` on any answer that is not one; the agent is "auth failing" while any loop is refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    def refused(self, loop: str, reason: str) -> None:
        """``loop`` got a pause verdict; ``reason`` is the answer as logged (``HTTP 401: …``)."""
        with self._lock:
            self._reasons[loop] = reason

    def accepted(self, loop: str) -> None:
        with self._lock:
            self._reasons.pop(loop, None)

    @property
    def reason(self) -> str | None:
        """``loop: reason`` of every refused loop, in the order they were refused; None if none is."""
        with self._lock:
            if not self._reasons:
                return None
            return "; ".join(f"{loop}: {reason}" for loop, reason in self._reasons.items())
