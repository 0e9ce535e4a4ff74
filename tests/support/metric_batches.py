"""Host-like metric batches for compaction tests: what agents send, in their order.

Each batch is one host's series over ``points`` ticks of ``step`` seconds (60 x 10 s by default, as
``bench/datagen.py``): a third counters, a third 2-decimal percentages, a third 6-decimal random
values. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np

from infragent.wire import MetricBatch, SeriesData


def host_batches(
    start: float,
    seconds: float,
    *,
    hosts: int = 3,
    series_per_host: int = 12,
    points: int = 60,
    step: float = 10.0,
    seed: int = 7,
    prefix: str = "b",
) -> list[MetricBatch]:
    """Batches covering ``[start, start + seconds)``, round by round (every host, then the next round)."""
    rounds = int(seconds // (points * step))
    out = []
    for r in range(rounds):
        k = np.arange(r * points, (r + 1) * points, dtype=np.float64)
        ts = (start + k * step).tolist()
        for h in range(hosts):
            rng = np.random.default_rng([seed, r, h])
            series = []
            for j in range(series_per_host):
                s = h * series_per_host + j
                if j % 3 == 0:
                    values = 1e6 * s + (20 + s % 50) * k + (k * 37 % 11)
                    name, kind, mono = "host.io", "sum", True
                elif j % 3 == 1:
                    values = np.round(50 + 40 * np.sin(k / 50 + s) + rng.normal(0, 2, len(k)), 2)
                    name, kind, mono = "host.percent", "gauge", False
                else:
                    values = np.round(rng.random(len(k)), 6)
                    name, kind, mono = "host.random", "gauge", False
                series.append(SeriesData(name, "1", kind, mono, {"n": str(j)}, ts, values.tolist()))
            node = f"host-{h}"
            out.append(MetricBatch(f"{prefix}-{r}-{h}", node, {"host.name": node}, series))
    return out
