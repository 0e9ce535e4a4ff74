"""A tenant's route tree: parsed from the document the API takes (``notify_routing.tree``),
written back, and edited one node at a time.

Document shape (every key optional; a child inherits what it does not set)::

    {"receivers": ["ops-slack"], "group_by": ["alertname", "host"], "group_wait": "30s",
     "group_interval": "5m", "repeat_interval": "4h", "notify_on": ["firing", "resolved"],
     "mute_times": [...], "active_times": [...],
     "escalation": [{"after": "15m", "receivers": ["pager"]}],
     "template": {"title": "...", "text": "..."},
     "routes": [{"id": "db", "name": "databases", "matchers": ["service=~\\"db.*\\""],
                 "receivers": ["dba-mail"], "continue": true, "routes": [...]}]}

Ids: the root is ``root``; a child keeps the ``id`` it was given, else gets one from its place
(``0``, ``0.1``; under a parent with id ``db``: ``db.0``). Why stable ids matter: a route's id is
part of its aggregation groups' key and of its escalation records, so an edit that moves a node must
not change its id; the edit helpers below therefore write every id into the document they return.
The root sets every default (``RootDefaults``, from settings); it takes no ``matchers`` or
``continue`` (it matches everything).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

from infragent.config import Settings
from infragent.notify.errors import NotifyConfigError, NotifyNotFoundError
from infragent.notify.intervals import interval_doc, time_intervals
from infragent.notify.model import DEFAULT_NOTIFY_ON, NOTIFICATION_KINDS, EscalationStep, Route
from infragent.notify.syntax import (
    Problems,
    duration,
    format_duration,
    join,
    label_names,
    matcher_text,
    matchers,
    raise_problems,
    strings,
    unknown_keys,
)

ROOT_ID = "root"
#: what a route may notify on (``test`` sends do not go through routes)
ROUTABLE_KINDS = tuple(k for k in NOTIFICATION_KINDS if k != "test")
TEMPLATE_KEYS = ("title", "text", "html")
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
_COMMON = (
    "name", "receivers", "group_by", "group_wait", "group_interval", "repeat_interval", "notify_on",
    "mute_times", "active_times", "escalation", "template", "routes",
)  # fmt: skip
_ROOT_KEYS = ("id", *_COMMON)
_CHILD_KEYS = ("id", "matchers", "continue", *_COMMON)


@dataclass(frozen=True, slots=True)
class RootDefaults:
    """What the root has when the document does not say: the ``notify_*`` settings' timings, no
    receiver, and grouping by rule and host (one message per failing rule per host; Alertmanager's
    own default, no grouping label, would put every incident of a tenant in one message)."""

    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    receivers: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ("alertname", "host")


def defaults_from_settings(settings: Settings) -> RootDefaults:
    """``RootDefaults`` from ``config.Settings`` (its ``notify_group_*``/``notify_repeat_*`` values)."""
    return RootDefaults(
        group_wait_s=settings.notify_group_wait_s,
        group_interval_s=settings.notify_group_interval_s,
        repeat_interval_s=settings.notify_repeat_interval_s,
    )


#: The defaults of a server with default settings (30s, 5m, 4h), for tools without a ``Settings``.
DEFAULT_TIMINGS = RootDefaults(
    group_wait_s=Settings.model_fields["notify_group_wait_s"].default,
    group_interval_s=Settings.model_fields["notify_group_interval_s"].default,
    repeat_interval_s=Settings.model_fields["notify_repeat_interval_s"].default,
)


class _Parser:
    def __init__(
        self, channel_names: Collection[str] | None, check_template: Callable[[str], str | None] | None
    ) -> None:
        self.channel_names = channel_names
        self.check_template = check_template
        self.problems: Problems = []
        self.ids: dict[str, str] = {}  # id → path of its node

    def receivers(self, value: object, path: str) -> tuple[str, ...]:
        names = strings(value, path, self.problems, what="channel name")
        if self.channel_names is not None:
            for i, name in enumerate(names):
                if name not in self.channel_names:
                    self.problems.append((join(path, i), f"no channel named {name!r}"))
        return names

    def timing(self, doc: Mapping[str, Any], key: str, path: str, *, zero_ok: bool) -> float | None:
        if key not in doc:
            return None
        seconds = duration(doc[key], join(path, key), self.problems)
        if seconds is not None and seconds == 0 and not zero_ok:
            self.problems.append((join(path, key), "must be more than 0"))
        return seconds

    def group_by(self, value: object, path: str) -> tuple[str, ...]:
        if isinstance(value, list | tuple) and "..." in value:
            if len(value) > 1:
                self.problems.append((path, '"..." (every label) stands alone'))
            return ("...",)
        return label_names(value, path, self.problems)

    def notify_on(self, value: object, path: str) -> frozenset[str]:
        kinds = strings(value, path, self.problems, what="notification kind")
        for i, kind in enumerate(kinds):
            if kind not in ROUTABLE_KINDS:
                self.problems.append((join(path, i), f"one of {', '.join(ROUTABLE_KINDS)} is expected"))
        return frozenset(kinds)

    def escalation(self, value: object, path: str) -> tuple[EscalationStep, ...]:
        if not isinstance(value, list | tuple):
            self.problems.append((path, "a list of steps is expected"))
            return ()
        steps: list[EscalationStep] = []
        for i, step in enumerate(value):
            here = join(path, i)
            if not isinstance(step, Mapping):
                self.problems.append((here, 'a step {"after": "15m", "receivers": [...]} is expected'))
                continue
            unknown_keys(step, ("after", "receivers"), here, self.problems)
            after = duration(step.get("after"), join(here, "after"), self.problems)
            if after == 0:
                self.problems.append((join(here, "after"), "must be more than 0"))
            if "receivers" not in step:
                self.problems.append((join(here, "receivers"), "required"))
            receivers = self.receivers(step.get("receivers", []), join(here, "receivers"))
            if after is not None:
                steps.append(EscalationStep(after, receivers))
        return tuple(steps)

    def template(self, value: object, path: str) -> dict[str, str]:
        if not isinstance(value, Mapping):
            self.problems.append((path, "an object with title, text or html is expected"))
            return {}
        unknown_keys(value, TEMPLATE_KEYS, path, self.problems)
        out: dict[str, str] = {}
        for key in TEMPLATE_KEYS:
            if key not in value:
                continue
            text = value[key]
            if not isinstance(text, str):
                self.problems.append((join(path, key), "a string is expected"))
                continue
            error = self.check_template(text) if self.check_template is not None else None
            if error:
                self.problems.append((join(path, key), error))
            out[key] = text
        return out

    def node(self, doc: object, path: str, node_id: str, *, root: bool) -> Route:
        if not isinstance(doc, Mapping):
            self.problems.append((path, "a route object is expected"))
            return Route(node_id)
        unknown_keys(doc, _ROOT_KEYS if root else _CHILD_KEYS, path, self.problems)
        if "id" in doc:
            given = doc["id"]
            if root and given != ROOT_ID:
                self.problems.append((join(path, "id"), f"the root's id is {ROOT_ID!r}"))
            elif not isinstance(given, str) or not _ID.fullmatch(given):
                self.problems.append((join(path, "id"), "1-64 letters, digits, _ . : - are expected"))
            else:
                node_id = given
        if node_id in self.ids:
            where = self.ids[node_id] or "the root"
            self.problems.append(
                (join(path, "id") if path else "id", f"id {node_id!r} is used by {where} too")
            )
        self.ids.setdefault(node_id, path)
        name = doc.get("name", "")
        if not isinstance(name, str) or len(name) > 100:
            self.problems.append((join(path, "name"), "a string of at most 100 characters is expected"))
            name = ""
        cont = doc.get("continue", False)
        if not isinstance(cont, bool):
            self.problems.append((join(path, "continue"), "true or false is expected"))

        def opt(key: str, parse: Callable[[object, str], Any]) -> Any:
            return parse(doc[key], join(path, key)) if key in doc else None

        return Route(
            id=node_id,
            name=name,
            matchers=matchers(doc.get("matchers", []), join(path, "matchers"), self.problems),
            receivers=opt("receivers", self.receivers),
            group_by=opt("group_by", self.group_by),
            group_wait_s=self.timing(doc, "group_wait", path, zero_ok=True),
            group_interval_s=self.timing(doc, "group_interval", path, zero_ok=False),
            repeat_interval_s=self.timing(doc, "repeat_interval", path, zero_ok=False),
            continue_=cont is True,
            mute_times=opt("mute_times", lambda v, p: time_intervals(v, p, self.problems)) or (),
            active_times=opt("active_times", lambda v, p: time_intervals(v, p, self.problems)) or (),
            notify_on=opt("notify_on", self.notify_on),
            escalation=opt("escalation", self.escalation) or (),
            template=opt("template", self.template),
            routes=self.children(doc.get("routes", []), path, node_id),
        )

    def children(self, sub: object, path: str, node_id: str) -> tuple[Route, ...]:
        if not isinstance(sub, list | tuple):
            self.problems.append((join(path, "routes"), "a list of routes is expected"))
            return ()
        prefix = "" if node_id == ROOT_ID else f"{node_id}."
        return tuple(
            self.node(child, join(join(path, "routes"), i), f"{prefix}{i}", root=False)
            for i, child in enumerate(sub)
        )


def parse_route_tree(
    doc: object,
    defaults: RootDefaults,
    channel_names: Collection[str] | None = None,
    check_template: Callable[[str], str | None] | None = None,
) -> Route:
    """The route tree of ``doc``, its root holding every value (``defaults`` where the document is
    silent). ``channel_names``: when given, every receiver must name one. ``check_template``: called
    with each template text, returns an error message or None. Raises ``NotifyConfigError`` with
    every problem of the whole document."""
    parser = _Parser(channel_names, check_template)
    root = parser.node(doc, "", ROOT_ID, root=True)
    raise_problems(parser.problems)
    return Route(
        id=ROOT_ID,
        name=root.name,
        receivers=defaults.receivers if root.receivers is None else root.receivers,
        group_by=defaults.group_by if root.group_by is None else root.group_by,
        group_wait_s=defaults.group_wait_s if root.group_wait_s is None else root.group_wait_s,
        group_interval_s=defaults.group_interval_s
        if root.group_interval_s is None
        else root.group_interval_s,
        repeat_interval_s=defaults.repeat_interval_s
        if root.repeat_interval_s is None
        else root.repeat_interval_s,
        mute_times=root.mute_times,
        active_times=root.active_times,
        notify_on=DEFAULT_NOTIFY_ON if root.notify_on is None else root.notify_on,
        escalation=root.escalation,
        template={} if root.template is None else root.template,
        routes=root.routes,
    )


def route_tree_to_doc(route: Route) -> dict[str, Any]:
    """The document of ``route`` (ids included): ``parse_route_tree`` reads it back to an equal tree."""
    doc: dict[str, Any] = {"id": route.id}
    if route.name:
        doc["name"] = route.name
    if route.matchers:
        doc["matchers"] = [matcher_text(m) for m in route.matchers]
    if route.continue_:
        doc["continue"] = True
    if route.receivers is not None:
        doc["receivers"] = list(route.receivers)
    if route.group_by is not None:
        doc["group_by"] = list(route.group_by)
    for key, seconds in (
        ("group_wait", route.group_wait_s),
        ("group_interval", route.group_interval_s),
        ("repeat_interval", route.repeat_interval_s),
    ):
        if seconds is not None:
            doc[key] = format_duration(seconds)
    if route.notify_on is not None:
        doc["notify_on"] = [k for k in ROUTABLE_KINDS if k in route.notify_on]
    if route.mute_times:
        doc["mute_times"] = [interval_doc(i) for i in route.mute_times]
    if route.active_times:
        doc["active_times"] = [interval_doc(i) for i in route.active_times]
    if route.escalation:
        doc["escalation"] = [
            {"after": format_duration(s.after_s), "receivers": list(s.receivers)} for s in route.escalation
        ]
    if route.template is not None:
        doc["template"] = dict(route.template)
    if route.routes:
        doc["routes"] = [route_tree_to_doc(r) for r in route.routes]
    return doc


# -- editing one node of a document ---------------------------------------------------------------


def _children(node: dict[str, Any]) -> list[Any]:
    sub = node.get("routes")
    return sub if isinstance(sub, list) else []


def _fill(node: dict[str, Any], node_id: str) -> None:
    for i, child in enumerate(_children(node)):
        if isinstance(child, dict):
            prefix = "" if node_id == ROOT_ID else f"{node_id}."
            child.setdefault("id", f"{prefix}{i}")
            _fill(child, str(child["id"]))


def with_ids(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with every node's id written in (the ids ``parse_route_tree`` gives)."""
    out = copy.deepcopy(dict(doc))
    out["id"] = ROOT_ID
    _fill(out, ROOT_ID)
    return out


def _find(doc: dict[str, Any], route_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(parent, node) of ``route_id`` in a document with ids; NotifyNotFoundError when absent."""
    stack: list[tuple[dict[str, Any] | None, dict[str, Any]]] = [(None, doc)]
    while stack:
        parent, node = stack.pop()
        if node.get("id") == route_id:
            return parent, node
        stack.extend((node, c) for c in _children(node) if isinstance(c, dict))
    raise NotifyNotFoundError("route", route_id)


def _all_ids(doc: dict[str, Any]) -> set[str]:
    found = {str(doc.get("id"))}
    for child in _children(doc):
        if isinstance(child, dict):
            found |= _all_ids(child)
    return found


def _new_node(doc: dict[str, Any], parent_id: str, node: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``node`` (copied) with an id: its own, or a fresh one from its place that no node has."""
    out = copy.deepcopy(dict(node))
    if "id" not in out:
        taken = _all_ids(doc)
        prefix = "" if parent_id == ROOT_ID else f"{parent_id}."
        n = index
        while f"{prefix}{n}" in taken:
            n += 1
        out["id"] = f"{prefix}{n}"
    _fill(out, str(out["id"]))
    return out


def add_route(doc: Mapping[str, Any], parent_id: str, node: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with ``node`` appended to the children of ``parent_id`` (ids written in).
    Validate the result with ``parse_route_tree``."""
    out = with_ids(doc)
    _, parent = _find(out, parent_id)
    sub = parent.setdefault("routes", [])
    if not isinstance(sub, list):
        raise NotifyConfigError([("routes", "a list of routes is expected")])
    sub.append(_new_node(out, parent_id, node, len(sub)))
    return out


def replace_route(doc: Mapping[str, Any], route_id: str, node: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` where the node ``route_id`` is ``node`` (it keeps ``route_id`` unless ``node``
    gives another id). Replacing ``root`` replaces the whole document."""
    out = with_ids(doc)
    parent, old = _find(out, route_id)
    new = copy.deepcopy(dict(node))
    new.setdefault("id", route_id)
    if parent is None:
        return with_ids(new)
    siblings = cast(list[Any], parent["routes"])
    siblings[_index(siblings, old)] = new
    return with_ids(out)


def remove_route(doc: Mapping[str, Any], route_id: str) -> dict[str, Any]:
    """A copy of ``doc`` without the node ``route_id`` and its subtree; the root cannot be removed."""
    out = with_ids(doc)
    parent, old = _find(out, route_id)
    if parent is None:
        raise NotifyConfigError([("id", "the root route cannot be removed (replace it instead)")])
    siblings = cast(list[Any], parent["routes"])
    del siblings[_index(siblings, old)]
    return out


def _index(siblings: list[Any], node: dict[str, Any]) -> int:
    return next(i for i, s in enumerate(siblings) if s is node)
