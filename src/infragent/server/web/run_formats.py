"""How the runbook pages write durations, time left and commands: pure functions handed to their
templates as ``rf`` (``rf.left(expires_at, now)``, ``rf.duration(mttr_s)``).

Why beside ``formats.py`` and not in it: these are the runs pages' words (an approval's time left,
an MTTR, a command line), and ``formats.py`` is shared by every page. Why on the server: the page
reads right without JavaScript and in tests; the time left is refreshed with the fragment (every
2 s while a run is going), so it needs no clock in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``; ``"—"`` for None (not measured)."""
    if seconds is None:
        return "—"
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        m, rest = divmod(int(s), 60)
        return f"{m} min {rest} s" if rest else f"{m} min"
    h, rest = divmod(int(s), 3600)
    return f"{h} h {rest // 60} min" if rest // 60 else f"{h} h"


def left(until: float | None, now: float) -> str:
    """The time left before ``until``: ``"14 min 32 s left"``; ``"expired"`` once it has passed."""
    if until is None:
        return "—"
    d = until - now
    if d <= 0:
        return "expired"
    return f"{duration(d)} left"


def command_line(action: str | None, target: str | None, params: Mapping[str, str] | None) -> str:
    """A command as one line a person reads before approving it: ``restart web name=web``."""
    if not action:
        return ""
    parts = [action]
    if target:
        parts.append(target)
    parts += [f"{k}={v}" for k, v in sorted((params or {}).items())]
    return " ".join(parts)
