"""Failpoints of the delivery worker — FOR TESTS ONLY: a way to kill the server at a chosen point.

Why: the promise "a notification accepted is delivered exactly once across a crash" can only be
shown by crashing a real server at the worst moments, which no clean shutdown reproduces. The end
to end tests start ``infragent server`` with ``INFRAGENT_FAILPOINTS="notify.before_send=kill"``:
the first delivery the worker claims (committed: status ``sending``, leased) SIGKILLs the process
before anything is sent; restarted without the variable, the server takes the delivery over when
its lease expires and sends it once. ``notify.after_send=kill`` dies after the send, before its
result is recorded: the receiver gets it, the restarted server sends it again with the same
``webhook-id``, which is what lets a receiver drop the copy.

The variable is read once, when the notifier is built (``from_environ``); an unset or empty one
costs one dictionary lookup per send. Never set it in production.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from typing import Literal

logger = logging.getLogger(__name__)

#: The environment variable (listed in ``config._ENV_NOT_SETTINGS``: it is not a setting).
ENV_VAR = "INFRAGENT_FAILPOINTS"
#: The points the worker passes: after the claim committed and before the send; after the send and
#: before its result is recorded.
POINTS = ("notify.before_send", "notify.after_send")
Action = Literal["kill"]


class Failpoints:
    """Named points and what happens when the code passes one (only ``kill`` exists)."""

    def __init__(self, actions: Mapping[str, Action] | None = None) -> None:
        self._actions = dict(actions or {})

    @classmethod
    def parse(cls, text: str) -> Failpoints:
        """``"notify.before_send=kill,notify.after_send=kill"``; unknown points or actions are
        refused (a typo must not make a crash test pass by never crashing)."""
        actions: dict[str, Action] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, _, action = item.partition("=")
            if name not in POINTS or action != "kill":
                raise ValueError(
                    f"{ENV_VAR}: unknown failpoint {item!r} (known: {', '.join(POINTS)}; action: kill)"
                )
            actions[name] = "kill"
        return cls(actions)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Failpoints:
        return cls.parse(environ.get(ENV_VAR, ""))

    def __bool__(self) -> bool:
        return bool(self._actions)

    def hit(self, name: str) -> None:
        """Pass the point ``name``: SIGKILL this process if it is armed with ``kill``."""
        if self._actions.get(name) == "kill":
            logger.warning("failpoint %s: killing the process (SIGKILL)", name)
            os.kill(os.getpid(), signal.SIGKILL)
