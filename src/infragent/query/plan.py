"""Planning a range read: which stored source to read and at what effective step.

Why the server picks the source and may raise ``step``: a graph cannot show more points than it has
pixels, and reading 10-second samples over a month would be slow for nothing. The requested step
is a *minimum*: it is raised so that no series returns more than ``MAX_POINTS`` buckets, then the
source follows from the effective step — raw samples below 60 s, 1-minute rollups from 60 s, 1-hour
rollups from 3,600 s. Rollups re-bucket exactly (``aggregate.fold``), which is why a rollup step is
rounded up to a whole multiple of its rollup.
"""

from __future__ import annotations

import math
from typing import Literal

#: Buckets per series at most; ``step`` is raised to keep under it.
MAX_POINTS = 1000

Source = Literal["raw", "1m", "1h"]


def plan(span: float, step: float) -> tuple[Source, float]:
    """(source, effective step) for a range of ``span`` seconds asked at ``step``.

    ``floor(to/step) - floor(from/step) + 1`` buckets is under ``span/step + 2``, hence the 2.
    """
    need = span / (MAX_POINTS - 2)
    eff = step if step >= need else float(math.ceil(need))
    if eff >= 3600:
        return "1h", math.ceil(eff / 3600 - 1e-9) * 3600.0
    if eff >= 60:
        return "1m", math.ceil(eff / 60 - 1e-9) * 60.0
    return "raw", eff
