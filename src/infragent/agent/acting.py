"""The agent's own actions in progress, for the checks' exit watch.

Why: a process check with ``watch_exit`` reports an exit as a definite failure at once (no waiting
for more failed probes), which is right for a crash and wrong for an exit the agent caused itself:
a ``restart`` action stops the old process before it starts the new one. Seen as a crash, that
exit opened a second incident and a second restart of a service that was already coming back
(the fault suite's hung service). While an action runs, and for ``GRACE_S`` after it, an exit is
not definite: the check's usual count of failed probes decides, so a service that really stays
down is still reported, a few seconds later.

One agent per process: the state is the process's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

#: After an action ends, its exits are still its own for this long: a restart waits for the old
#: process to exit before it starts the new one, so this only covers the exit watch's own latency
#: in telling of it. Short, because an exit after it is a crash of the new process: a crash right
#: after a restart (a crash loop) must still be seen at once.
GRACE_S: Final = 0.25

_lock = threading.Lock()
_running = 0
_until = 0.0


@contextmanager
def action(monotonic: float | None = None) -> Iterator[None]:
    """Mark an action of the agent as running for the duration of the block."""
    global _running, _until
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            _until = max(_until, (monotonic if monotonic is not None else time.monotonic()) + GRACE_S)


def active(now: float | None = None) -> bool:
    """Whether an exit seen now may be the doing of the agent's own action."""
    with _lock:
        return _running > 0 or (now if now is not None else time.monotonic()) < _until
