"""The authorization matrix (issue 12, "Done when"): every route, every kind of caller, own
or other tenant's resource:  the status ``auth/scopes.py`` says it must get.

Generated, not written per route: the routes come from ``app.routes``; each route's operation is
read from its dependency (``require``/``attempt`` and ``web/deps.page`` record it under
``__infragent_operation__``), and who may do it from the one permission table (``scopes.can``).
So a route added tomorrow is checked without editing this file, and a route that is neither in the
public allowlist nor declares an operation fails ``test_every_route_is_public_or_declares_an_operation``
(``test_a_route_without_an_operation_is_caught`` proves that failing path on a synthetic route).

Expectations, for a caller in tenant A:
* nobody signed in: API 401; page 303 to ``/login`` (an API key does not sign a browser in, so a
  key on a page is the same 303);
* the role or key lacks the operation: 403;
* allowed, tenant A's ids in the path: neither 401 nor 403 nor 5xx; a GET is 2xx and shows none of
  tenant B's identifiers;
* allowed, tenant B's ids in the path: 404, as for an id that does not exist.

Requests carry minimal valid bodies (``BODIES``, keyed by method and path; ``{}`` otherwise, where a
422 proves only that the auth check ran first, and is reported). One app under uvicorn, SQLite,
seeded once for the module; GETs run first so that deletes cannot hide a route's answer.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from infragent.auth import scopes
from infragent.auth.registration import mint_key, register_client
from infragent.config import Settings
from infragent.incidents.model import IncidentPolicy
from infragent.model import ActionSpec, Decision, Severity
from infragent.notify.model import Matcher
from infragent.responder.steps import Act, IncidentFacts, Step, StepRunbook
from infragent.rules.files import parse_rule_text
from infragent.server import auth as server_auth
from infragent.server.app import create_app
from infragent.server.auth import declared_scopes, require
from infragent.server.web import deps as web_deps
from infragent.store import agents, events, incidents, notify_config, runs
from infragent.store import commands as command_store
from infragent.store import rules as rule_store
from infragent.store import schedules as schedule_store
from infragent.store.notify_schema import notify_deliveries
from infragent.store.runbook_schema import run_approvals
from infragent.store.sql import SqlStore, open_store
from support.route_table import (
    OPERATION_ATTR,
    PARAM,
    PUBLIC,
    SIGNED_IN_ANY,
    Endpoint,
    classify,
    contexts,
    operations,
)
from support.servers import serve
from support.web import make_user, sign_in

# -- the seeded world: tenant A (the callers') and tenant B (the other) --------------------------------

RULE_TEXT = """\
alert: {name}
kind: threshold
metric: system.cpu.utilization
function: avg
window: 1m
op: '>'
value: 0.9
"""


@dataclass
class Tenant:
    client_id: str
    host: str
    incident_id: str
    event_id: str
    command_id: str
    rule: str
    key_id: str  # a key no caller uses: the one rotated and revoked
    user_id: str  # a user no caller is: the one changed and removed
    user_email: str
    keys: dict[str, str] = field(default_factory=dict)  # scope -> plaintext of a key holding only it
    #: notification ids by kind (channel, route, silence, inhibit, delivery): ``_seed_notify``
    notify: dict[str, str] = field(default_factory=dict)
    #: a schedule of the tenant: ``_seed_schedule``
    schedule_id: str = ""

    def markers(self) -> list[str]:
        """Identifiers unique to this tenant: none may appear in another tenant's answers."""
        return [
            self.client_id,
            self.host,
            self.incident_id,
            self.event_id,
            self.command_id,
            self.rule,
            self.key_id,
            self.user_id,
            self.user_email,
            *self.notify.values(),
            self.schedule_id,
        ]

    def value(self, kind: str) -> str:
        if kind in NOTIFY_KINDS or kind in RUN_KINDS:
            return self.notify[kind]
        return {
            "host": self.host,
            "incident": self.incident_id,
            "event": self.event_id,
            "command": self.command_id,
            "rule": self.rule,
            "key": self.key_id,
            "user": self.user_id,
            "schedule": self.schedule_id,
        }[kind]


def _seed(store: SqlStore, tag: str) -> Tenant:
    now = time.time()
    suffix = uuid.uuid4().hex[:8]
    reg = register_client(
        store, f"owner-{tag}-{suffix}@example.com", f"Tenant {tag}", "http://127.0.0.1:9/h", now
    )
    cid = reg.client.id
    keys = {s: mint_key(store, cid, [s], now, actor="test").plaintext for s in scopes.ALL_SCOPES}
    target_key = mint_key(store, cid, ["read"], now, actor="test", name="target").key_id
    host = f"host-{tag}-{suffix}"
    rule_name = f"MatrixRule{tag.upper()}{suffix}"
    with store.write() as conn:
        agent = agents.register_agent(
            conn,
            cid,
            host,
            kind="host",
            command_mode="pull",
            actions=[ActionSpec("restart", {})],
            labels={},
            now=now,
        )
        event = events.insert_event(
            conn,
            cid,
            type="app_down",
            service="web",
            severity=Severity.CRITICAL,
            data={},
            node_id=host,
            now=now,
        )
        incident_id = incidents.record_event(conn, event, IncidentPolicy(), now)
        decision = Decision(source="runbook", action="restart", rationale="matrix seed", target="web")
        _, command_id = command_store.record_decision(
            conn,
            client_id=cid,
            agent_id=agent.id,
            event_ids=[event.id],
            decision=decision,
            now=now,
            actor="test",
        )
        rule = parse_rule_text(RULE_TEXT.format(name=rule_name), "seed")
        rule_store.create_rule(conn, cid, rule, origin="api", now=now, actor="test")
    assert command_id is not None
    email = f"target-{tag}-{suffix}@example.com"
    notify = _seed_notify(store, cid, f"{tag}-{suffix}", now) | _seed_run(store, cid, host, now)
    return Tenant(
        cid,
        host,
        incident_id,
        event.id,
        command_id,
        rule_name,
        target_key,
        "",
        email,
        keys,
        notify,
        _seed_schedule(store, cid, f"{tag}-{suffix}", now),
    )


def _seed_schedule(store: SqlStore, cid: str, tag: str, now: float) -> str:
    with store.write() as conn:
        return schedule_store.create_schedule(
            conn,
            cid,
            name=f"matrix-{tag}",
            runbook="matrix-runbook",
            spec={"every_s": 3600.0, "start": 0.0},
            tz=None,
            missed="skip",
            node_id=None,
            labels={},
            enabled=True,
            known_runbooks={"matrix-runbook"},
            now=now,
            actor="test",
        ).id


NOTIFY_KINDS = ("channel", "route", "silence", "inhibit", "delivery")
#: runbook runs and approvals (``_seed_run``), kept in ``Tenant.notify`` beside the notification ids
RUN_KINDS = ("run", "approval")


def _seed_run(store: SqlStore, cid: str, host: str, now: float) -> dict[str, str]:
    """A queued run of a one-step runbook and a pending approval for its command (``RUN_KINDS``)."""
    runbook = StepRunbook("matrix", (Step("restart", Act(action="restart")),))
    facts = IncidentFacts(incident_id="", severity="critical", service="web", node_id=host)
    approval = str(uuid.uuid4())
    with store.write() as conn:
        run_id = runs.insert_run(
            conn, client_id=cid, runbook=runbook, facts=facts, node_id=host, incident_id=None, now=now,
            actor="test",
        )  # fmt: skip
        conn.execute(
            run_approvals.insert().values(
                id=approval, client_id=cid, run_id=run_id, seq=1, node_id=host, runbook="matrix",
                action="restart", target="web", params={}, source="runbook", reason="matrix",
                requested_at=now, expires_at=now + 3600, status="pending",
            )
        )  # fmt: skip
    return {"run": run_id, "approval": approval}


def _seed_notify(store: SqlStore, cid: str, tag: str, now: float) -> dict[str, str]:
    """A channel, a route tree, a silence, an inhibit rule and a dead delivery (``NOTIFY_KINDS``)."""
    route = f"route-{tag}"
    with store.write() as conn:
        channel = notify_config.create_channel(
            conn, cid, name=f"matrix-{tag}", kind="inapp", settings={}, secrets={}, actor="test", now=now
        )
        silence = notify_config.create_silence(
            conn,
            cid,
            matchers=(Matcher("host", "=", f"host-{tag}"),),
            starts_at=now,
            ends_at=now + 3600,
            created_by="test",
            comment="matrix",
            now=now,
        )
        rule = notify_config.create_inhibit_rule(
            conn,
            cid,
            name=f"matrix-{tag}",
            source=(Matcher("alertname", "=", "HostSilent"),),
            target=(),
            equal=("host",),
            actor="test",
            now=now,
        )
        tree = {"routes": [{"id": route, "matchers": ['team="matrix"']}]}
        notify_config.put_routing(conn, cid, tree, expected_version=None, actor="test", now=now)
        delivery = str(uuid.uuid4())
        conn.execute(
            notify_deliveries.insert().values(
                id=delivery,
                client_id=cid,
                channel_id=channel.id,
                kind="firing",
                message={"id": delivery, "incidents": []},
                status="dead",
                created_at=now,
                next_attempt_at=now,
                deadline_at=now,
                cause=f"matrix:{delivery}",
            )
        )
    return {
        "channel": channel.id,
        "route": route,
        "silence": silence.id,
        "inhibit": rule.id,
        "delivery": delivery,
    }


def _ghost() -> Tenant:
    """Ids of every kind that no tenant has."""
    x = f"missing-{uuid.uuid4().hex[:8]}"
    notify = dict.fromkeys(NOTIFY_KINDS + RUN_KINDS, x)
    return Tenant(
        x, x, str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), x, "missing0000x", x, x, {}, notify, x
    )


# -- callers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    kind: str  # "anonymous" | "session" | "key"
    held: tuple[str, ...]  # the scopes the role or the key holds
    headers: dict[str, str]


def _callers(app: FastAPI, tenant: Tenant) -> list[Caller]:
    """Anonymous, one signed-in user per role (``support.web.sign_in``'s way: a user row and a session
    from the app's own service, no password hashing) and one key per scope, all of ``tenant``."""
    out = [Caller("anonymous", "anonymous", (), {})]
    for role in scopes.ALL_ROLES:
        headers = sign_in(app, tenant.client_id, role).browser_headers
        out.append(Caller(f"role:{role}", "session", scopes.role_scopes(role), headers))
    for scope, key in tenant.keys.items():
        out.append(Caller(f"key:{scope}", "key", (scope,), {"Authorization": f"Bearer {key}"}))
    return out


# -- requests: path values, example bodies and queries -------------------------------------------------

#: The kind of resource a path parameter names, by the path segment before it (then by its name).
SEGMENT_KINDS = {
    "hosts": "host",
    "agents": "host",
    "incidents": "incident",
    "events": "event",
    "commands": "command",
    "rules": "rule",
    "keys": "key",
    "users": "user",
    "channels": "channel",
    "routes": "route",
    "silences": "silence",
    "inhibit-rules": "inhibit",
    "runs": "run",
    "approvals": "approval",
    "deliveries": "delivery",
    "schedules": "schedule",
}
NAME_KINDS = {
    "host": "host",
    "node_id": "host",
    "node": "host",
    "incident_id": "incident",
    "event_id": "event",
    "command_id": "command",
    "name": "rule",
    "key_id": "key",
    "user_id": "user",
}
_unique = itertools.count()
Example = Callable[[Tenant], Any]

#: Minimal valid bodies by (method, path template), so an allowed call on another tenant's id
#: reaches its 404 rather than stopping at 422. Anything else is sent ``{}``.
BODIES: dict[tuple[str, str], Example] = {
    ("POST", "/api/v1/events"): lambda t: {
        "type": "app_down",
        "service": "web",
        "severity": "warning",
        "data": {},
    },
    ("POST", "/api/v1/agents"): lambda t: {
        "node_id": f"new-{next(_unique)}",
        "kind": "host",
        "command_mode": "pull",
    },
    ("POST", "/api/v1/keys"): lambda t: {"scopes": ["read"], "name": "matrix"},
    ("POST", "/api/v1/keys/{key_id}/rotate"): lambda t: {"grace_s": 60},
    ("POST", "/api/v1/commands/{command_id}/result"): lambda t: {"status": "ok", "output": "matrix"},
    ("POST", "/api/v1/incidents/{incident_id}/notes"): lambda t: {"text": "matrix note"},
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): lambda t: {"note": "matrix"},
    ("POST", "/api/v1/rules"): lambda t: _rule_json(f"MatrixNew{next(_unique)}"),
    ("POST", "/api/v1/rules/validate"): lambda t: _rule_json("MatrixValidate"),
    ("PUT", "/api/v1/rules/{name}"): lambda t: _rule_json(t.rule),
    ("PATCH", "/api/v1/rules/{name}"): lambda t: {"enabled": False},
    ("POST", "/api/v1/agents/{node_id}/commands"): lambda t: {"action": "restart", "params": {}},
    ("POST", "/api/v1/agents/{node_id:path}/commands"): lambda t: {"action": "restart", "params": {}},
    ("POST", "/api/v1/users"): lambda t: {
        "email": f"new-{next(_unique)}@example.com",
        "name": "New",
        "password": "correct horse battery staple",
        "role": "viewer",
    },
    ("PATCH", "/api/v1/users/{user_id}"): lambda t: {"role": "operator"},
    ("PUT", "/api/v1/kill-switch"): lambda t: {"on": False, "reason": "matrix"},
    ("POST", "/api/v1/notify/inbox/read"): lambda t: {},
    ("POST", "/api/v1/notify/channels"): lambda t: {"name": f"matrix-new-{next(_unique)}", "kind": "inapp"},
    ("PATCH", "/api/v1/notify/channels/{channel_id}"): lambda t: {"enabled": True},
    ("PUT", "/api/v1/notify/routes"): lambda t: {"routes": [{"id": t.notify["route"]}]},
    ("POST", "/api/v1/notify/routes"): lambda t: {"route": {"matchers": ['team="new"']}},
    ("PUT", "/api/v1/notify/routes/{route_id}"): lambda t: {"route": {"matchers": ['team="matrix"']}},
    ("POST", "/api/v1/notify/silences"): lambda t: {
        "matchers": ['host="matrix"'],
        "duration": "1h",
        "comment": "matrix",
    },
    ("POST", "/api/v1/notify/inhibit-rules"): lambda t: {
        "name": f"matrix-new-{next(_unique)}",
        "source": ['alertname="HostSilent"'],
    },
}
#: Form bodies of the dashboard's form handlers (sent form-encoded, as htmx does).
FORMS: dict[tuple[str, str], Example] = {
    ("POST", "/users/{user_id}/role"): lambda t: {"role": "viewer"},
}
#: Query strings by path: required parameters, and a long poll that must not wait.
QUERIES: dict[str, Example] = {
    "/api/v1/agents/{node_id}/commands": lambda t: {"wait": 0},
    "/api/v1/agents/{node_id:path}/commands": lambda t: {"wait": 0},
    "/api/v1/query_range": lambda t: {
        "host": t.host,
        "metric": "system.cpu.utilization",
        "from": time.time() - 3600,
        "to": time.time(),
    },
}


def _rule_json(name: str) -> dict[str, Any]:
    return {
        "alert": name,
        "kind": "threshold",
        "metric": "system.cpu.utilization",
        "function": "avg",
        "window": "1m",
        "op": ">",
        "value": 0.9,
    }


def _kind(path: str, name: str) -> str:
    segments = path.split("/")
    for i, segment in enumerate(segments):
        found = PARAM.fullmatch(segment)
        if found and found.group(1) == name and segments[i - 1] in SEGMENT_KINDS:
            return SEGMENT_KINDS[segments[i - 1]]
    if name in NAME_KINDS:
        return NAME_KINDS[name]
    raise AssertionError(
        f"{path}: no seeded value for path parameter {{{name}}}: add it to SEGMENT_KINDS or NAME_KINDS"
    )


def url_for(endpoint: Endpoint, tenant: Tenant) -> str:
    return PARAM.sub(lambda m: tenant.value(_kind(endpoint.path, m.group(1))), endpoint.path)


@dataclass(frozen=True)
class Answer:
    status: int
    location: str
    text: str
    json: dict[str, Any] | None  # the body, when it is a JSON object


@dataclass
class World:
    http: httpx.Client
    app: FastAPI
    store: SqlStore
    a: Tenant
    b: Tenant
    callers: list[Caller]
    ghost: Tenant  # ids that exist in no tenant
    notes: list[str] = field(default_factory=list)

    def call(self, endpoint: Endpoint, caller: Caller, target: Tenant) -> Answer:
        """One request; an event stream is not read past its headers."""
        method = endpoint.method
        body = BODIES.get((method, endpoint.path))
        query = QUERIES.get(endpoint.path)
        kwargs: dict[str, Any] = {"headers": caller.headers, "params": query(self.a) if query else None}
        form = FORMS.get((method, endpoint.path))
        if form is not None:
            kwargs["data"] = form(target)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body(target) if body else {}
        with self.http.stream(method, url_for(endpoint, target), **kwargs) as r:
            streaming = r.headers.get("content-type", "").startswith("text/event-stream")
            text = "" if streaming else r.read().decode("utf-8", "replace")
            parsed = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
            body = parsed if isinstance(parsed, dict) else None
            return Answer(r.status_code, r.headers.get("location", ""), text, body)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("matrix") / "infragent.db"
    store = open_store(f"sqlite:///{path}")
    settings = Settings(
        webhook_allowed_networks=("127.0.0.0/8",),
        api_rate_limit_per_key=0,  # ~1,000 requests from one IP and a few keys: no 429 here
        api_rate_limit_per_ip=0,
        registration_rate_limit=0,
        stream_max_connections=1000,
    )
    try:
        app = create_app(settings, store=store)
        a, b = _seed(store, "a"), _seed(store, "b")
        for t in (a, b):
            t.user_id = make_user(app, t.client_id, "viewer", t.user_email)
        with serve(app) as base, httpx.Client(base_url=base, timeout=10, follow_redirects=False) as http:
            yield World(http, app, store, a, b, _callers(app, a), _ghost())
    finally:
        store.close()


def _order(endpoint: Endpoint) -> tuple[int, str]:
    """GETs first (every seeded row still there), deletes last."""
    return ({"GET": 0, "DELETE": 2}.get(endpoint.method, 1), endpoint.path)


# -- the tests -----------------------------------------------------------------------------------------


def test_every_route_is_public_or_declares_an_operation(world: World) -> None:
    found = classify(world.app)
    assert found.undeclared == [], "routes neither public nor declaring an operation (require/page)"
    for endpoint in found.endpoints:
        assert endpoint.operation in scopes.OPERATIONS, endpoint
    assert len(found.endpoints) >= 25
    assert {e.page for e in found.endpoints} == {True, False}  # pages and API routes are both covered


def test_api_routes_declare_to_openapi_the_scope_of_their_operation(world: World) -> None:
    """The OpenAPI ``security`` a client reads is the table's scope for the recorded operation."""
    for path, methods, route, _ in contexts(world.app):
        if not isinstance(route, APIRoute) or path in PUBLIC | SIGNED_IN_ANY:
            continue
        ops = operations(route.dependant)
        if ops and not ops[0][1]:
            assert declared_scopes(route) == [scopes.required(ops[0][0])], (path, methods)


def test_a_route_without_an_operation_is_caught(world: World) -> None:
    """The failing path, proven: a fresh app with one undeclared route, one API and one page route."""
    app = create_app(Settings(), store=world.store)

    @app.get("/api/v1/sneaky")
    def sneaky() -> dict[str, str]:
        return {}

    @app.post("/api/v1/declared", dependencies=[Depends(require("audit.read"))])
    def declared() -> dict[str, str]:
        return {}

    @app.get("/declared-page", dependencies=[Depends(web_deps.page("rules.read"))])
    def declared_page() -> dict[str, str]:
        return {}

    found = classify(app)
    assert found.undeclared == [("/api/v1/sneaky", "GET")]
    assert Endpoint("/api/v1/declared", "POST", "audit.read", False) in found.endpoints
    assert Endpoint("/declared-page", "GET", "rules.read", True) in found.endpoints
    assert server_auth.OPERATION_ATTR == OPERATION_ATTR  # API and pages record it under one name


def test_public_routes_answer_anyone(world: World) -> None:
    for path, method in classify(world.app).public:
        if method != "GET":
            continue  # sign-in, sign-out and registration posts are their own modules' tests
        r = world.http.get(path)
        assert r.status_code < 500 and r.status_code not in (401, 403), (path, r.status_code)


def test_signed_in_any_routes_refuse_anonymous(world: World) -> None:
    for path, method in classify(world.app).signed_in_any:
        r = world.http.request(method, path)
        assert r.status_code == 401, (path, method, r.status_code)


def _expect(endpoint: Endpoint, caller: Caller) -> str:
    """What the table says: "login" (303), "unauthenticated" (401), "forbidden" (403), "allowed"."""
    if endpoint.page and caller.kind != "session":
        return "login"
    if caller.kind == "anonymous":
        return "unauthenticated"
    return "allowed" if scopes.can(caller.held, endpoint.operation) else "forbidden"


def _check(world: World, endpoint: Endpoint, caller: Caller, target: Tenant) -> str | None:
    """The mismatch between the answer and the table, or None."""
    own = target is world.a
    expected = _expect(endpoint, caller)
    got = world.call(endpoint, caller, target)
    where = f"{endpoint.method} {endpoint.path} as {caller.name} on {'own' if own else 'other'} tenant"
    if got.status >= 500:
        return f"{where}: {got.status} {got.text[:200]}"
    if expected == "login":
        ok = got.status == 303 and got.location.startswith("/login")
    elif expected == "unauthenticated":
        ok = got.status == 401
    elif expected == "forbidden":
        ok = got.status == 403
        needed = scopes.required(endpoint.operation)
        if ok and got.json is not None:  # the answer names the missing scope (OTLP: in its message)
            ok = got.json.get("required_scope", needed) == needed and repr(needed) in got.text
    elif not own:
        # 404; or, where a missing id is not an error (a long poll's "nothing for you": 204), exactly
        # what an id that exists nowhere gets, with nothing of tenant B in it
        ok = got.status == 404
        if not ok:
            missing = world.call(endpoint, caller, world.ghost)
            leaked = [m for m in world.b.markers() if m in got.text]
            ok = got.status == missing.status and got.status < 300 and not leaked
            if ok:
                world.notes.append(f"{where}: {got.status}, as for an id that does not exist")
        if not ok and got.status == 422 and (endpoint.method, endpoint.path) not in BODIES | FORMS:
            world.notes.append(f"{where}: 422 (no example body)")
            ok = True
    elif got.status in (401, 403) or (got.status == 303 and got.location.startswith("/login")):
        ok = False
    elif endpoint.method == "GET":
        ok = 200 <= got.status < 300
        if not ok and got.status == 422 and endpoint.path not in QUERIES:
            world.notes.append(f"{where}: 422 (no example query)")
            ok = True
        leaked = [m for m in world.b.markers() if m in got.text]
        if leaked:
            return f"{where}: shows tenant B's {leaked}"
    else:
        ok = True  # any 2xx/3xx/404/409/415/422: the auth check passed and the route ran
    expected = expected if own or expected != "allowed" else "404"
    return None if ok else f"{where}: expected {expected}, got {got.status} {got.location} {got.text[:200]}"


def test_the_matrix(world: World) -> None:
    """Every endpoint, caller and own/other tenant answers what ``auth/scopes.py`` says."""
    started = time.monotonic()
    endpoints = sorted(classify(world.app).endpoints, key=_order)
    wrong: list[str] = []
    calls = 0
    for endpoint in endpoints:
        targets = [world.a, world.b] if endpoint.params else [world.a]
        for caller in world.callers:
            for target in targets:
                problem = _check(world, endpoint, caller, target)
                calls += 1
                if problem:
                    wrong.append(problem)
    took = time.monotonic() - started
    print(f"\nauthorization matrix: {len(endpoints)} endpoints, {calls} calls, {took:.1f} s")
    for note in world.notes:
        print(f"  note: {note}")
    assert wrong == [], "\n".join(wrong)
    assert calls >= len(endpoints) * len(world.callers)
