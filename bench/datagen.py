"""Deterministic metric data for the ingest benchmark, rendered in each target's wire format.

One data set, several encodings, so every target of ``bench/ingest.py`` stores the same samples:
``hosts`` x ``series_per_host`` series (10,000 by default), each batch one host's series over
``points`` consecutive 10-second ticks (100 x 60 = 6,000 points). Batch ``i`` is host ``i % hosts``
in round ``i // hosts``; its values depend only on ``(seed, i)``, its timestamps on ``t0`` too.

Series mix, a third each, to look like host metrics rather than noise:

* counters (``*.io``, monotonic sums): integers rising by a varying step,
* gauges in percent with two decimals (a slow wave plus noise),
* gauges of uniform random values with six decimals — the anchor script's values
  (``/work/shared/anchors/vm_ingest.py``), the hardest case for any compressor.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from infragent.wire import MetricBatch, SeriesData, decode_batch, encode_batch

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Dataset:
    hosts: int = 100
    series_per_host: int = 100
    points: int = 60
    step_s: float = 10.0
    seed: int = 42
    t0: float = 1_764_000_000.0

    @property
    def series(self) -> int:
        return self.hosts * self.series_per_host

    @property
    def batch_points(self) -> int:
        return self.series_per_host * self.points

    def span_s(self, batches: int) -> float:
        """Seconds of data time that ``batches`` batches cover."""
        return -(-batches // self.hosts) * self.points * self.step_s

    def columns(self, i: int) -> tuple[int, F64, npt.NDArray[np.float64]]:
        """(host, timestamps[points], values[series_per_host, points]) of batch ``i``."""
        host, rnd_round = i % self.hosts, i // self.hosts
        k = np.arange(rnd_round * self.points, (rnd_round + 1) * self.points, dtype=np.float64)
        ts = self.t0 + k * self.step_s
        rng = np.random.default_rng([self.seed, i])
        s = np.arange(self.series_per_host, dtype=np.float64)[:, None] + host * self.series_per_host
        kind = np.arange(self.series_per_host)[:, None] % 3
        counter = 1e6 * s + (20 + s % 50) * k + (k * 37 % 11)
        percent = np.round(50 + 40 * np.sin(k / 50 + s) + rng.normal(0, 2, (len(s), len(k))), 2)
        noise = np.round(rng.random((len(s), len(k))), 6)
        values = np.where(kind == 0, counter, np.where(kind == 1, percent, noise))
        return host, ts, values

    def name(self, j: int) -> tuple[str, str, bool]:
        """(metric name, kind, monotonic) of a host's series ``j``."""
        if j % 3 == 0:
            return "bench.io", "sum", True
        return ("bench.percent" if j % 3 == 1 else "bench.random"), "gauge", False

    def native(self, i: int, *, level: int = 1) -> bytes:
        """Batch ``i`` as our agent sends it: gzip'd msgpack ``MetricBatch``."""
        host, ts, values = self.columns(i)
        ts_list = ts.tolist()
        series = []
        for j, row in enumerate(values.tolist()):
            name, kind, mono = self.name(j)
            attrs = {"series": str(host * self.series_per_host + j)}
            series.append(SeriesData(name, "1", kind, mono, attrs, ts_list, row))  # type: ignore[arg-type]
        batch = MetricBatch(f"bench-{self.seed}-{i}", f"h{host}", {"host.name": f"h{host}"}, series)
        return encode_batch(batch, compresslevel=level)

    def prometheus(self, i: int) -> bytes:
        """Batch ``i`` in Prometheus text exposition with millisecond timestamps (VictoriaMetrics import)."""
        host, ts, values = self.columns(i)
        ms = [str(int(t * 1000)) for t in ts.tolist()]
        parts = []
        for j, row in enumerate(values.tolist()):
            name, _, _ = self.name(j)
            label = f'{name.replace(".", "_")}{{series="{host * self.series_per_host + j}",host="h{host}"}} '
            parts.extend(f"{label}{v!r} {t}\n" for v, t in zip(row, ms, strict=True))
        return "".join(parts).encode()

    def otlp(self, i: int, *, level: int = 1) -> bytes:
        """Batch ``i`` as an OTLP ``ExportMetricsServiceRequest`` (protobuf, gzip'd)."""
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.metrics.v1 import metrics_pb2

        host, ts, values = self.columns(i)
        ns = [int(t * 1e9) for t in ts.tolist()]
        req = svc.ExportMetricsServiceRequest()
        rm = req.resource_metrics.add()
        rm.resource.attributes.append(
            common_pb2.KeyValue(key="host.name", value=common_pb2.AnyValue(string_value=f"h{host}"))
        )
        sm = rm.scope_metrics.add()
        for j, row in enumerate(values.tolist()):
            name, kind, _ = self.name(j)
            metric = sm.metrics.add(name=name, unit="1")
            attr = common_pb2.KeyValue(
                key="series", value=common_pb2.AnyValue(string_value=str(host * self.series_per_host + j))
            )
            if kind == "sum":
                metric.sum.is_monotonic = True
                metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
                points = metric.sum.data_points
            else:
                points = metric.gauge.data_points
            for t, v in zip(ns, row, strict=True):
                p = points.add(time_unix_nano=t, as_double=v)
                p.attributes.append(attr)
        return gzip.compress(req.SerializeToString(), compresslevel=level, mtime=0)


def decode_native(body: bytes) -> MetricBatch:
    """For checks: the batch a native body carries."""
    return decode_batch(body, content_encoding="gzip", max_decompressed=1 << 30)
