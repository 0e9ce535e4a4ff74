"""Which routes an incident reaches, and which aggregation group it joins there: Alertmanager's
routing, on an incident's labels.

The labels routing sees (``incident_labels``) are the incident's own labels plus:

* ``alertname``: the rule's name for an alert incident; the event ``type`` for an event incident
  (``app_down``), so one matcher style serves both;
* ``severity`` (the incident's, which joining signals may have raised), ``source`` (``alert`` or
  ``event``) and ``tenant`` (the client id);
* ``host``: an event incident's ``node_id`` when it has no ``host`` label, because alert incidents
  carry the agent's node id as ``host`` and an inhibit rule ``equal: [host]`` must reach both.

These derived labels win over an incident label of the same name: a rule cannot pretend to be
another rule or another tenant.

Matching (``match_routes``) walks the tree depth first: the root always matches; within a matching
node, children are tried in order, a matching child is descended into, and the walk stops at the
first matching child unless that child has ``continue``; a node none of whose children matched is
itself a result. Every value a node does not set (``None``; for the lists ``mute_times``,
``active_times`` and ``escalation``: empty) is its parent's. A matcher on a missing label sees the
empty string (``env!="dev"`` matches an incident without ``env``), and regexes are anchored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from infragent.incidents.model import Incident
from infragent.notify.model import Matcher, Route, RouteMatch

#: ``group_by`` of this one name groups by every label: one group per distinct label set
EVERY_LABEL = "..."


def incident_labels(incident: Incident) -> dict[str, str]:
    """The labels routes, silences and inhibit rules see for ``incident`` (module docstring)."""
    labels = dict(incident.labels)
    if incident.source == "event" and "host" not in labels and labels.get("node_id"):
        labels["host"] = labels["node_id"]
    alertname = incident.rule_name or (labels.get("type") if incident.source == "event" else None)
    if alertname:
        labels["alertname"] = alertname
    labels["severity"] = incident.severity
    labels["source"] = incident.source
    labels["tenant"] = incident.client_id
    return labels


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(matcher: Matcher, labels: Mapping[str, str]) -> bool:
    """One matcher on ``labels``; a missing label is the empty string; regexes are anchored."""
    have = labels.get(matcher.name, "")
    if matcher.op == "=":
        return have == matcher.value
    if matcher.op == "!=":
        return have != matcher.value
    hit = _regex(matcher.value).fullmatch(have) is not None
    return hit if matcher.op == "=~" else not hit


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Every matcher holds (no matcher: everything matches)."""
    return all(matches(m, labels) for m in matchers)


#: what a root that leaves a value unset gets (``config.parse_route_tree`` sets them all)
_BASE = RouteMatch("", (), (), 0.0, 300.0, 4 * 3600.0, (), (), frozenset(), (), {})


def _resolve(route: Route, p: RouteMatch) -> RouteMatch:
    """``route``'s values, each unset one taken from its parent's resolved ``p``."""
    return RouteMatch(
        route_id=route.id,
        receivers=p.receivers if route.receivers is None else route.receivers,
        group_by=p.group_by if route.group_by is None else route.group_by,
        group_wait_s=p.group_wait_s if route.group_wait_s is None else route.group_wait_s,
        group_interval_s=p.group_interval_s if route.group_interval_s is None else route.group_interval_s,
        repeat_interval_s=p.repeat_interval_s if route.repeat_interval_s is None else route.repeat_interval_s,
        mute_times=route.mute_times or p.mute_times,
        active_times=route.active_times or p.active_times,
        notify_on=p.notify_on if route.notify_on is None else route.notify_on,
        escalation=route.escalation or p.escalation,
        template=p.template if route.template is None else route.template,
    )


def _walk(route: Route, parent: RouteMatch, labels: Mapping[str, str]) -> list[RouteMatch]:
    here = _resolve(route, parent)
    found: list[RouteMatch] = []
    for child in route.routes:
        if not matches_all(child.matchers, labels):
            continue
        found.extend(_walk(child, here, labels))
        if not child.continue_:
            break
    return found or [here]


def match_routes(root: Route, labels: Mapping[str, str]) -> list[RouteMatch]:
    """The routes ``labels`` reach, in tree order, with inherited values resolved (never empty: the
    root matches everything)."""
    return _walk(root, _BASE, labels)


def group_labels(match: RouteMatch, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels of ``labels`` that ``match.group_by`` names (all of them for ``...``); a label
    the incident lacks is left out, so incidents without it group together."""
    if match.group_by == (EVERY_LABEL,):
        return dict(labels)
    return {name: labels[name] for name in match.group_by if name in labels}


def group_key(match: RouteMatch, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``(key, group labels)``: the key is 32 hex digits of a SHA-256 of the route id and the group
    labels (order-free), so the same labels on the same route always land in the same group, and
    the same labels on two routes never do."""
    grouped = group_labels(match, labels)
    payload = json.dumps([match.route_id, sorted(grouped.items())], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32], grouped
