"""Alert evaluation: rules over the metrics and events as they arrive, alert state that survives
restarts, one evaluator per tenant across server processes (docs/alerting.md).

    ports.py      what the evaluator needs (AlertStore, SeriesReader) and the values crossing them
    buffers.py    a series' recent samples as numpy arrays
    instances.py  rule, series and instance entries       tenant.py  one tenant in memory (pure)
    holdings.py   tenants held under a lease: loading, refreshing from the store
    intake.py     what other threads hand over, queued    evaluator.py  the thread: rounds, the tick
    relay.py      signals out, event rules cached
    sql.py        the AlertStore over the database, and ``build_evaluator``
    signals.py    PostgreSQL NOTIFY/LISTEN between server processes
    telemetry.py  the evaluator's Prometheus metrics

The pure rule core (``infragent.rules``) decides what a window means; this package decides what
is in each window, when it is evaluated, and what is written.
"""

from __future__ import annotations

from infragent.alerting.evaluator import Evaluator, EvaluatorConfig
from infragent.alerting.sql import SqlAlertStore, build_evaluator

__all__ = ["Evaluator", "EvaluatorConfig", "SqlAlertStore", "build_evaluator"]
