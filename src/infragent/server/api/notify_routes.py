"""The tenant's route tree (who is told what, grouped how, when): read it whole or one route, replace
it whole, add, replace or remove one route. Reading is ``notify.read``; changing ``routes.write``.

Why whole-document writes with a ``version``: the tree is one document (Alertmanager's shape) and a
change to one route can change which sibling catches an incident; two people editing at once would
silently undo each other. Every write names the version it read (optional but recommended); a tree
changed since is a 409 and nothing is written. The one-route endpoints are the same write: they
edit the stored document (``notify/route_config``) and store the whole result, validated.

Validation is ``notify/config.parse_route_tree`` on the result, with the tenant's channel names (a
receiver must name one) and the template checker, so a 422 lists every problem of the tree at once,
with its path (``routes[1].group_wait``). A tenant that stored no tree is answered its default tree:
a root whose receivers are every enabled channel (``docs/notifications.md``), version 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
import orjson
import yaml
from fastapi import APIRouter, Depends, Request

from infragent.notify import config as notify_config
from infragent.notify.errors import NotifyConfigError, NotifyNotFoundError
from infragent.notify.render import validate_template
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.notify_schemas import RouteAddIn, RouteOut, RoutePutIn, RoutingOut
from infragent.store import notify_config as store

router = APIRouter(prefix="/api/v1/notify/routes", tags=["notifications"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no route with this id in the tree"}}
WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    409: {"description": "the tree changed since the version given: read it again"},
    422: {"description": "the resulting tree is invalid: `problems` names every fault"},
}
#: The tree's body: the tree itself (optionally with ``version``), or ``{"tree": …, "version": …}``.
TREE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}


def _current(svc: AppServices, conn: Any, client_id: str) -> RoutingOut:
    stored = store.get_routing(conn, client_id)
    if stored is None:
        names = [c.name for c in store.list_channels(conn, client_id) if c.enabled]
        return RoutingOut(
            tree={"id": notify_config.ROOT_ID, "receivers": names},
            version=0,
            updated_at=None,
            updated_by=None,
            default=True,
        )
    return RoutingOut(
        tree=notify_config.with_ids(stored.tree),
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
        default=False,
    )


def _store(
    svc: AppServices,
    who: Principal,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
    version: int | None,
) -> RoutingOut:
    """Apply ``edit`` to the current tree, validate the result whole, store it under ``version``."""
    with svc.store.write() as conn:
        current = _current(svc, conn, who.client_id)
        tree = notify_config.with_ids(edit(current.tree))
        names = [c.name for c in store.list_channels(conn, who.client_id)]
        defaults = notify_config.defaults_from_settings(svc.settings)
        notify_config.parse_route_tree(tree, defaults, names, validate_template)
        store.put_routing(
            conn, who.client_id, tree, expected_version=version, actor=who.actor, now=svc.clock()
        )
        return _current(svc, conn, who.client_id)


async def _document(request: Request) -> dict[str, Any]:
    """The request's JSON or YAML object (by ``Content-Type``); 422 naming the body otherwise."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        doc = (
            yaml.safe_load(raw)
            if kind in ("application/yaml", "application/x-yaml", "text/yaml")
            else orjson.loads(raw)
        )
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise NotifyConfigError(
            [("", f"the body is not valid {'YAML' if 'yaml' in kind else 'JSON'}: {exc}")]
        ) from None
    if not isinstance(doc, dict):
        raise NotifyConfigError([("", "the body must be an object: the route tree")])
    return doc


def _version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise NotifyConfigError([("version", "the version read (an integer ≥ 0) is expected")])


@router.get("", response_model=RoutingOut)
def get_tree(
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RoutingOut:
    """The whole tree with every route's id, and its ``version`` (0 and ``default``: none stored)."""
    with svc.store.read() as conn:
        return _current(svc, conn, who.client_id)


@router.put("", response_model=RoutingOut, responses=WRITE_REFUSALS, openapi_extra=TREE_BODY)
async def put_tree(
    request: Request,
    who: Annotated[Principal, Depends(require("routes.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RoutingOut:
    """Replace the whole tree: the body is the tree (JSON, or YAML with ``Content-Type:
    application/yaml``) with an optional top-level ``version``, or ``{"tree": {…}, "version": n}``."""
    doc = await _document(request)
    if "tree" in doc and set(doc) <= {"tree", "version"}:
        tree, version = doc["tree"], _version(doc.get("version"))
    else:
        version = _version(doc.pop("version", None))
        tree = doc
    if not isinstance(tree, dict):
        raise NotifyConfigError([("tree", "an object is expected: the route tree")])
    return await anyio.to_thread.run_sync(_store, svc, who, lambda _: tree, version)


@router.post("", response_model=RouteOut, status_code=201, responses=NOT_FOUND | WRITE_REFUSALS)
def add_route(
    body: RouteAddIn,
    who: Annotated[Principal, Depends(require("routes.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RouteOut:
    """Append ``route`` to the children of ``parent`` (default the root); the answer is the route
    with its id (given, or made from its place) and the tree's new version."""
    before: set[str] = set()

    def edit(tree: dict[str, Any]) -> dict[str, Any]:
        before.update(_ids(notify_config.with_ids(tree)))
        return notify_config.add_route(tree, body.parent, body.route)

    stored = _store(svc, who, edit, body.version)
    new_id = body.route.get("id") or next(i for i in _ids(stored.tree) - before)
    return RouteOut(route=_find(stored.tree, str(new_id)), version=stored.version)


@router.get("/{route_id}", response_model=RouteOut, responses=NOT_FOUND)
def get_route(
    route_id: str,
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RouteOut:
    """One route with its subtree (``root`` is the whole tree)."""
    with svc.store.read() as conn:
        current = _current(svc, conn, who.client_id)
    return RouteOut(route=_find(current.tree, route_id), version=current.version)


@router.put("/{route_id}", response_model=RouteOut, responses=NOT_FOUND | WRITE_REFUSALS)
def put_route(
    route_id: str,
    body: RoutePutIn,
    who: Annotated[Principal, Depends(require("routes.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RouteOut:
    """Replace one route and its subtree (it keeps its id unless the body gives another)."""
    stored = _store(svc, who, lambda t: notify_config.replace_route(t, route_id, body.route), body.version)
    return RouteOut(route=_find(stored.tree, str(body.route.get("id", route_id))), version=stored.version)


@router.delete("/{route_id}", response_model=RoutingOut, responses=NOT_FOUND | WRITE_REFUSALS)
def delete_route(
    route_id: str,
    who: Annotated[Principal, Depends(require("routes.write"))],
    svc: Annotated[AppServices, Depends(services)],
    version: int | None = None,
) -> RoutingOut:
    """Remove one route and its subtree (the root cannot be removed); the answer is the new tree."""
    return _store(svc, who, lambda t: notify_config.remove_route(t, route_id), version)


def _ids(node: Any) -> set[str]:
    found = {str(node.get("id"))} if isinstance(node, dict) else set()
    for child in node.get("routes", []) if isinstance(node, dict) else []:
        found |= _ids(child)
    return found


def _find(node: Any, route_id: str) -> dict[str, Any]:
    stack = [node]
    while stack:
        here = stack.pop()
        if isinstance(here, dict):
            if here.get("id") == route_id:
                return here
            stack.extend(here.get("routes") or [])
    raise NotifyNotFoundError("route", route_id)
