"""The per-tenant cap on alert instances (``max_alert_instances_per_tenant``), checked when a rule
is written: how many instances a rule would have, and how many the tenant's other rules hold.

Why an estimate over the tenant's current series rather than the evaluator's count alone: a new
rule has no instances yet, and a rule written before its hosts report would pass any cap later;
the larger of the estimate and the stored count is what each rule is charged. Series that appear
after a rule was accepted are the evaluator's to cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from infragent.rules.evaluate import group_labels
from infragent.rules.model import Rule
from infragent.store.metrics.model import SeriesInfo
from infragent.store.rules import load_rules
from infragent.store.schema import alert_instances


def instance_counts(conn: sa.Connection, client_id: str) -> dict[str, int]:
    """Alert instances stored per rule id of the client (what the evaluator has created so far)."""
    rows = conn.execute(
        sa.select(alert_instances.c.rule_id, sa.func.count())
        .where(alert_instances.c.client_id == client_id)
        .group_by(alert_instances.c.rule_id)
    )
    return {r[0]: int(r[1]) for r in rows}


@dataclass(frozen=True, slots=True)
class InstanceBudget:
    """What a rule would add to the tenant's alert instances: ``instances`` for the rule,
    ``others`` for the tenant's other enabled rules, against ``cap``."""

    instances: int
    others: int
    cap: int

    @property
    def exceeded(self) -> bool:
        return self.instances + self.others > self.cap

    def refusal(self, name: str) -> str:
        return (
            f"rule {name!r} would create {self.instances} alert instances; with the {self.others} of the "
            f"tenant's other rules that passes the cap of {self.cap} (max_alert_instances_per_tenant): "
            "narrow its selector or its `by` labels"
        )


def estimate_instances(rule: Rule, series: Sequence[SeriesInfo]) -> int:
    """The groups among ``series`` the rule reads: one alert instance each. An event rule's groups
    come from events, not series: 0 here (its stored instances are counted instead)."""
    if rule.kind == "event":
        return 0
    selector = rule.selector
    groups: set[tuple[tuple[str, str], ...]] = set()
    for s in series:
        if selector is not None and s.name != selector.metric:
            continue
        labels = {**s.labels, "host": s.host}
        if selector is None or selector.matches(s.name, labels):
            groups.add(tuple(sorted(group_labels(rule, labels).items())))
    return len(groups)


def instance_budget(
    conn: sa.Connection, client_id: str, rule: Rule, series: Sequence[SeriesInfo], cap: int
) -> InstanceBudget:
    """The budget of ``rule`` (new, or replacing the client's rule of that name) against ``cap``.

    Each rule counts the larger of its estimate over the tenant's current ``series`` and the
    instances the evaluator has stored for it, so neither a quiet fleet nor event rules hide any.
    """
    stored = instance_counts(conn, client_id)
    others = 0
    mine = estimate_instances(rule, series) if rule.enabled else 0
    for other in load_rules(conn, client_id):
        if other.name == rule.name:
            mine = max(mine, stored.get(other.id, 0)) if rule.enabled else 0
        elif other.enabled:
            others += max(estimate_instances(other.rule, series), stored.get(other.id, 0))
    return InstanceBudget(mine, others, cap)
