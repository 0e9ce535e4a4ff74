"""Chunk rows: a batch cut into one chunk per series and clock hour, each with its summary.

Pure: no I/O, no clock. The summary of a chunk (``n``, ``vmin``, ``vmax``, ``vsum``, ``vlast``) is
its partial aggregate, computed by the query kernel's ``fold`` (``query/aggregate.py``) like every
other aggregate; the bytes come from the codec (``chunks.py``), dense or raw.

Why chunks never cross a clock hour: their summaries then add up exactly into 1-hour rollups, in SQL
(retention's archive) or in numpy (``reads.hour_parts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt

from infragent.query.aggregate import Partials, fold
from infragent.store.metrics.chunks import F64, HOUR, encode_raw_segments, encode_segments


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One stored chunk and its summary; the summary columns are the chunk's 1-hour rollup partial.

    Chunks never cross a clock hour (``split_batch`` cuts them there), so ``n``/``vmin``/``vmax``/
    ``vsum`` and ``vlast`` (the value at ``end_ts``) aggregate exactly into 1-hour buckets in SQL.
    """

    series_id: int
    start_ts: float
    end_ts: float
    n: int
    vmin: float
    vmax: float
    vsum: float
    vlast: float
    data: bytes


def split_batch(
    series: Sequence[tuple[int, Sequence[float], Sequence[float]]], *, dense: bool = True
) -> list[ChunkRow]:
    """Cut ``(series_id, timestamps, values)`` into chunks: one per series and clock hour, time-sorted.

    Points are stably sorted by time inside a series, so ``vlast`` is the value at the latest
    timestamp (the last one sent, on a tie) and ``decode_chunk`` returns them in time order.
    ``dense=False`` writes the raw layout (what ingest stores until the compactor rewrites it).
    """
    series = [s for s in series if len(s[1])]
    if not series:
        return []
    lengths = np.fromiter((len(s[1]) for s in series), dtype=np.intp, count=len(series))
    total = int(lengths.sum())
    ts = np.fromiter(chain.from_iterable(s[1] for s in series), dtype=np.float64, count=total)
    values = np.fromiter(chain.from_iterable(s[2] for s in series), dtype=np.float64, count=total)
    return split_columns([s[0] for s in series], lengths, ts, values, dense=dense)


def split_columns(
    sids: Sequence[int], lengths: npt.NDArray[np.intp], ts: F64, values: F64, *, dense: bool = True
) -> list[ChunkRow]:
    """``split_batch`` on columns: series ``i`` owns the next ``lengths[i]`` (> 0) points."""
    return cut(lengths, ts, values, dense=dense).rows(sids)


@dataclass(frozen=True, slots=True)
class ChunkColumns:
    """The chunks of a batch as columns (one entry per chunk); ``series`` indexes the caller's series.

    Why columns: the PostgreSQL write path ships them as binary arrays (``pg_arrays.py``)
    without building a Python object per chunk.
    """

    series: npt.NDArray[np.intp]
    start_ts: F64
    end_ts: F64
    n: npt.NDArray[np.intp]
    vmin: F64
    vmax: F64
    vsum: F64
    vlast: F64
    data: list[bytes]

    def rows(self, sids: Sequence[int]) -> list[ChunkRow]:
        return [
            ChunkRow(sids[i], t0, t1, n, lo, hi, total, last, blob)
            for i, t0, t1, n, lo, hi, total, last, blob in zip(
                self.series.tolist(),
                self.start_ts.tolist(),
                self.end_ts.tolist(),
                self.n.tolist(),
                self.vmin.tolist(),
                self.vmax.tolist(),
                self.vsum.tolist(),
                self.vlast.tolist(),
                self.data,
                strict=True,
            )
        ]


def cut(lengths: npt.NDArray[np.intp], ts: F64, values: F64, *, dense: bool = True) -> ChunkColumns:
    """Series ``i`` owns the next ``lengths[i]`` (> 0) points: one chunk per series and clock hour."""
    if len(ts) == 0:
        none = np.zeros(0)
        return ChunkColumns(
            np.zeros(0, dtype=np.intp), none, none, np.zeros(0, dtype=np.intp), none, none, none, none, []
        )
    ids = np.repeat(np.arange(len(lengths)), lengths)
    dt = np.diff(ts)
    if len(dt) and bool(((dt < 0) & (np.diff(ids) == 0)).any()):  # agents send in order: skip the sort
        order = np.lexsort((ts, ids))  # stable: equal times keep their input order
        ts, values, ids = ts[order], values[order], ids[order]
    hour = np.floor(ts / HOUR)
    cuts = np.flatnonzero((np.diff(ids) != 0) | (np.diff(hour) != 0)) + 1
    bounds = np.concatenate(([0], cuts, [len(ts)])).astype(np.intp)
    starts = bounds[:-1]
    summary = fold(Partials.of_samples(ts, values), starts)
    return ChunkColumns(
        series=ids[starts],
        start_ts=summary.start,
        end_ts=ts[bounds[1:] - 1],
        n=np.diff(bounds),  # the counts as integers, for the int8 column
        vmin=summary.min,
        vmax=summary.max,
        vsum=summary.sum,
        vlast=summary.last,
        data=encode_segments(ts, values, bounds) if dense else encode_raw_segments(ts, values, bounds),
    )
