"""Which scope each operation needs, and whether a key's scopes or a user's role grant it: the
one permission table of the API and of the dashboard.

Why one table of operations rather than a scope written on each route: the routes and pages name
*what* they do (``events.read``), this module says *who* may do it. A user's role is one more way
to hold scopes (``ROLE_SCOPES``): a viewer holds ``read``, so a viewer's API call to act is the
same 403 as an ``ingest`` key's, and the page hides the button by asking the same table
(``can``). Pure: no I/O, no framework, testable as a table.

The scopes (docs/api.md "Scopes"):

* ``ingest``: what an agent or an SDK does from a host: send metrics and events, register itself
  as an agent, poll its own commands, post their results;
* ``read``: read the tenant's data (events with their decisions and audit trail, metrics, hosts);
* ``operate``: act on the tenant's incidents (acknowledge, resolve, note) and, next, its hosts;
* ``admin``: manage keys and settings, and everything the other scopes allow.

**admin implies all.** A key stores the scopes it was given; a key holding ``admin`` is granted
every scope, so the registration key is stored as ``["admin"]`` and a scope added later (say
``operate`` routes) is granted to existing admin keys without rewriting them. No other scope
implies another: an ``ingest`` key on every host cannot read the tenant's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Literal, get_args

from infragent.errors import InfrAgentError

Scope = Literal["ingest", "read", "operate", "admin"]
#: A user's role in one tenant (docs/security.md "Roles").
Role = Literal["admin", "operator", "viewer"]
ALL_ROLES: Final[tuple[Role, ...]] = get_args(Role)
ALL_SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
#: The scope that implies every other.
ADMIN: Final[Scope] = "admin"

#: The key returned at registration: the tenant owner's.
REGISTRATION_SCOPES: Final[tuple[Scope, ...]] = ("admin",)
#: The key an agent is installed with (``infragent up``, ``infragent agent install``).
AGENT_SCOPES: Final[tuple[Scope, ...]] = ("ingest",)
#: The key an application's SDK reports with.
SDK_SCOPES: Final[tuple[Scope, ...]] = ("ingest",)

#: operation → the scope it needs. Every authenticated route names one operation from here.
OPERATIONS: Final[dict[str, Scope]] = {
    # ingest: from a host
    "metrics.write": "ingest",  # POST /api/v1/metrics, POST /v1/metrics (OTLP)
    "events.report": "ingest",  # POST /api/v1/events
    "agents.register": "ingest",  # POST /api/v1/agents
    "commands.poll": "ingest",  # GET /api/v1/agents/{node_id}/commands
    "commands.report": "ingest",  # POST /api/v1/commands/{command_id}/result
    # read: the tenant's data
    "events.read": "read",  # GET /api/v1/events, GET /api/v1/events/{event_id}
    "metrics.read": "read",  # GET /api/v1/query_range, /api/v1/series, /api/v1/hosts
    "rules.read": "read",  # GET /api/v1/rules, /api/v1/rules/{name}, /api/v1/alerts
    "incidents.read": "read",  # GET /api/v1/incidents, /api/v1/incidents/{id}, the incident stream
    "hosts.read": "read",  # the dashboard's overview, hosts and host pages; GET /api/v1/agents
    "commands.read": "read",  # GET /api/v1/commands/{id}: a command's status and output
    "stream.read": "read",  # GET /api/v1/stream: the tenant's live stream (SSE)
    "audit.read": "read",  # GET /api/v1/audit: the audit log and its hash-chain check
    "session.read": "read",  # GET /api/v1/session: who is asking (every role holds read)
    "notify.read": "read",  # GET channels (never a secret), routes, silences, inhibit rules, deliveries
    "inbox.read": "read",  # GET/POST /api/v1/notify/inbox: a signed-in user's own in-app notifications
    "runs.read": "read",  # GET /api/v1/runs, /api/v1/approvals, /api/v1/effectiveness, /api/v1/schedules,
    #                       /api/v1/guardrails: runbook executions, approvals, MTTR, schedules, guards
    # operate: act on the tenant's incidents and hosts
    "incidents.write": "operate",  # acknowledge, resolve, add a note
    "commands.send": "operate",  # POST /api/v1/agents/{node}/commands: remote control
    "silences.write": "operate",  # POST/DELETE /api/v1/notify/silences
    "channels.test": "operate",  # POST /api/v1/notify/channels/{id}/test
    "deliveries.retry": "operate",  # POST /api/v1/notify/deliveries/{id}/retry (a dead letter)
    "runs.cancel": "operate",  # POST /api/v1/runs/{id}/cancel
    "approvals.decide": "operate",  # POST /api/v1/approvals/{id}/approve|reject (operators approve)
    # admin: credentials, people, what is watched
    "keys.read": "admin",  # GET /api/v1/keys: prefix, scopes, created, last use; never a secret
    "keys.create": "admin",  # POST /api/v1/keys
    "keys.rotate": "admin",  # POST /api/v1/keys/{key_id}/rotate
    "keys.revoke": "admin",  # POST /api/v1/keys/{key_id}/revoke
    "users.read": "admin",  # GET /api/v1/users
    "users.write": "admin",  # POST/PATCH/DELETE /api/v1/users
    "clients.register": "admin",  # POST /api/v1/clients/register when registration_mode is admin-only
    "rules.write": "admin",  # POST/PUT/DELETE /api/v1/rules
    "channels.write": "admin",  # POST/PATCH/DELETE /api/v1/notify/channels
    "routes.write": "admin",  # PUT/POST/DELETE /api/v1/notify/routes, /api/v1/notify/inhibit-rules
    "guardrails.write": "admin",  # PUT /api/v1/guardrails (shadow mode, budget), /api/v1/kill-switch
    "schedules.write": "admin",  # POST/PATCH/DELETE /api/v1/schedules
}

#: role → the scopes a signed-in user with that role holds in the tenant.
ROLE_SCOPES: Final[dict[Role, tuple[Scope, ...]]] = {
    "viewer": ("read",),
    "operator": ("read", "operate"),
    "admin": ("admin",),
}


class ScopeError(InfrAgentError):
    """A valid key lacks the scope an operation needs: answered 403 with ``required_scope``.

    Why its own type: the answer must name the missing scope as data (``required_scope``), so a
    client can tell "wrong key for this" (403) from "no valid key" (401) without parsing text.
    """

    def __init__(self, operation: str, required_scope: Scope) -> None:
        super().__init__(f"this API key lacks the {required_scope!r} scope, which {operation} needs")
        self.operation = operation
        self.required_scope: Scope = required_scope


def required(operation: str) -> Scope:
    """The scope ``operation`` needs; an unknown operation is a programming error (KeyError)."""
    return OPERATIONS[operation]


def allows(held: Iterable[str], needed: Scope) -> bool:
    """Whether a key holding ``held`` may do what ``needed`` guards; ``admin`` implies every scope."""
    have = set(held)
    return needed in have or ADMIN in have


def can(held: Iterable[str], operation: str) -> bool:
    """Whether ``held`` grants ``operation``: what a page asks before showing a button."""
    return allows(held, required(operation))


def role_scopes(role: str) -> tuple[Scope, ...]:
    """The scopes ``role`` holds; an unknown role holds none (a row written by a newer version)."""
    for known, held in ROLE_SCOPES.items():
        if known == role:
            return held
    return ()


def check(held: Iterable[str], operation: str) -> None:
    """Raise ``ScopeError`` unless ``held`` grants ``operation``."""
    needed = required(operation)
    if not allows(held, needed):
        raise ScopeError(operation, needed)


def problems(scopes: Sequence[str]) -> str | None:
    """Why ``scopes`` cannot be given to a key (empty, unknown or repeated), or None when they can."""
    if not scopes:
        return "at least one scope is needed"
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        return f"unknown scope(s) {', '.join(map(repr, unknown))}: choose from {', '.join(ALL_SCOPES)}"
    if len(set(scopes)) != len(scopes):
        return "a scope is listed twice"
    return None
