"""How the dashboard writes numbers and times: pure functions the page modules hand to their
templates as ``fmt`` (``fmt.ago(ts, now)``, ``fmt.pct(0.42)``).

Why on the server: a page must read right without JavaScript and in tests; ``app.js`` only turns
``<time datetime=…>`` into the browser's local time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime


def ago(ts: float | None, now: float) -> str:
    """``"12 s ago"``, ``"5 min ago"``, ``"3 h ago"``, ``"2 d ago"``; ``"never"`` for None."""
    if ts is None:
        return "never"
    d = max(0.0, now - ts)
    if d < 60:
        return f"{d:.0f} s ago"
    if d < 3600:
        return f"{d // 60:.0f} min ago"
    if d < 86_400:
        return f"{d // 3600:.0f} h ago"
    return f"{d // 86_400:.0f} d ago"


def iso(ts: float | None) -> str:
    """UTC ISO 8601 to the second (what ``<time datetime>`` holds); ``""`` for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(ts: float | None) -> str:
    """A readable UTC time, shown until ``app.js`` rewrites it in local time."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pct(fraction: float | None, digits: int = 0) -> str:
    """``0.423`` → ``"42%"``; ``"—"`` for None."""
    if fraction is None:
        return "—"
    return f"{100.0 * fraction:.{digits}f}%"
