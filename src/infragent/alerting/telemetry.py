"""The evaluator's metrics, registered on the app's registry (``server/telemetry.py``'s ``Telemetry``).

Why the registry is handed in: one per app (tests build many apps in one process), and the
evaluator must not import the server to find it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from infragent.rules.state import AlertStatus

#: Seconds for one evaluation round of one tenant (a batch's instances, or a tick).
EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: From a batch handed to the evaluator to its transition committed: the 50 ms goal sits mid-scale.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.evaluations = Counter(
            "infragent_rule_evaluations", "Alert instances evaluated (at ingest and on the tick).", registry=r
        )
        self.transitions = Counter(
            "infragent_alert_transitions",
            "Alert transitions committed, by the status they went to.",
            ["to"],
            registry=r,
        )
        self.eval_seconds = Histogram(
            "infragent_rule_eval_seconds",
            "Time to evaluate one round of one tenant's instances (without the write).",
            buckets=EVAL_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "infragent_alert_transition_latency_seconds",
            "From a stored batch handed to the evaluator to the transition it caused being committed.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.leases = Gauge(
            "infragent_rule_leases_held", "Tenants whose rules this server process evaluates.", registry=r
        )
        self.instances = Gauge(
            "infragent_alert_instances",
            "Alert instances held in memory by this process, by status.",
            ["status"],
            registry=r,
        )
        self.refused = Counter(
            "infragent_alert_instances_refused",
            "New alert instances not created because the tenant is at max_alert_instances_per_tenant.",
            registry=r,
        )
        self.lost = Counter(
            "infragent_rule_leases_lost",
            "Tenants given up because another process holds (or took over) their evaluation.",
            registry=r,
        )
        for status in AlertStatus:
            self.transitions.labels(status.value)
            self.instances.labels(status.value)
