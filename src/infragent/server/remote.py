"""Remote control: a person (or an ``operate`` key) runs an allowlisted action on an agent.

Why it goes through the responder's own steps: a command a person asks for is checked by the same
function as the responder's (``responder.policy.check_allowed``: the action on the allowlist the
agent reported, every parameter declared and fully matching its pattern), recorded as a decision
(source ``user``) with its command in one transaction before anything is sent, and delivered the
same way: queued for a pull agent, which fetches and reports it; for a push agent, marked sent, then
POSTed through the same signed-webhook dispatcher, and its result recorded by
``store.commands.record_result``. So the audit log, the stream and the API see one kind of command.

What differs from the responder: no cooldown (a person asking twice is not a storm), but a command
of the same action already open on the agent (younger than the command TTL) is refused with 409,
so a double click does not run it twice. The push POST runs off the request, on this service's
small thread pool: the request answers 202 with the command queued, and its status moves live.

Audit entries of a person's command, each with the person as actor and the command id as subject
(except ``decision.made``, whose subject is the decision): ``decision.made`` (source user),
``command.requested``, then ``command.queued`` (pull) or ``command.sent`` (push),
``command.result`` (or ``command.expired`` for a pull command never fetched in time).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infragent.model import PASSIVE_ACTIONS, ActionResult, Decision
from infragent.redact import redact
from infragent.responder import policy
from infragent.responder.ports import Dispatcher
from infragent.server.auth import Principal
from infragent.store import agents as agent_rows
from infragent.store import audit, command_reads, tenants
from infragent.store import commands as command_rows
from infragent.store.command_reads import CommandView
from infragent.store.records import AgentRecord
from infragent.store.sql import SqlStore

if TYPE_CHECKING:
    import sqlalchemy as sa

logger = logging.getLogger(__name__)

#: The longest reason a person may give; it becomes the decision's rationale and the command's reason.
MAX_REASON = 500
#: The stored lengths of an action name and a target (``store/schema.py`` ``commands``).
MAX_ACTION = 100
MAX_TARGET = 255


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """What a person asks to run: ``action`` with ``params`` on agent ``node_id``."""

    node_id: str
    action: str
    params: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    reason: str = ""

    def problem(self) -> str | None:
        """What is too long to store (the page's form, unlike the API's body model, has no limits)."""
        if len(self.action) > MAX_ACTION:
            return f"the action name is longer than {MAX_ACTION} characters"
        if self.target is not None and len(self.target) > MAX_TARGET:
            return f"the target is longer than {MAX_TARGET} characters"
        if len(self.reason) > MAX_REASON:
            return f"the reason is longer than {MAX_REASON} characters"
        return None


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a request was not accepted, as the HTTP status and JSON ``detail`` the API answers.

    A value, not an exception: the API and the page answer it each in their own form (JSON, or a
    message in the fragment), and nothing was written.
    """

    status: int
    detail: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.detail.get("message", ""))


class RemoteControl:
    """Accepts remote-control requests and delivers push commands off the request."""

    def __init__(
        self,
        store: SqlStore,
        dispatcher: Dispatcher,
        *,
        command_ttl_s: float,
        clock: Callable[[], float],
        workers: int = 2,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._ttl_s = command_ttl_s
        self._clock = clock
        # Threads start on the first submit; none exist until a push command is asked for.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remote-control")

    def stop(self) -> None:
        """Finish the deliveries under way (each bounded by the dispatcher's timeout and retries),
        drop those not started (they stay queued, past the TTL they block nothing), close the client."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._dispatcher.close()

    def _checked(
        self, conn: sa.Connection, who: Principal, request: CommandRequest, now: float
    ) -> AgentRecord | Refused:
        """The agent ``request`` is for, if it exists in the caller's tenant, allows the action with
        these parameters (the responder's own check) and runs no such command now; else why not."""
        agent = agent_rows.get_agent(conn, who.client_id, request.node_id)
        if agent is None:
            return _no_agent(request.node_id)
        refused = _refusal(request, agent.actions)
        if refused is not None:
            return refused
        running = command_reads.running_command(
            conn, who.client_id, agent.id, request.action, now - self._ttl_s
        )
        return _running(request, running) if running is not None else agent

    def check(self, who: Principal, request: CommandRequest) -> Refused | None:
        """Whether ``request`` would be accepted now (the page's confirm step); writes nothing."""
        with self._store.read() as conn:
            found = self._checked(conn, who, request, self._clock())
        return found if isinstance(found, Refused) else None

    def send(self, who: Principal, request: CommandRequest) -> CommandView | Refused:
        """Check, record and start delivering ``request``; the command as recorded, or why not."""
        now = self._clock()
        with self._store.write() as conn:
            # Under the tenant's lock: two requests at once cannot both find nothing running.
            audit.lock_tenant(conn, who.client_id)
            agent = self._checked(conn, who, request, now)
            if isinstance(agent, Refused):
                return agent
            decision = Decision(
                source="user",
                action=request.action,
                target=request.target,
                params=dict(request.params),
                rationale=request.reason or f"requested by {who.email or who.actor}",
            )
            _, command_id = command_rows.record_decision(
                conn,
                client_id=who.client_id,
                agent_id=agent.id,
                event_ids=[],
                decision=decision,
                now=now,
                actor=who.actor,
                requested_by=who.actor,
            )
            assert command_id is not None  # an allowed action always implies a command
            detail = {
                "node_id": agent.node_id,
                "mode": agent.command_mode,
                "action": decision.action,
                "target": decision.target,
                "params": decision.params,
                "reason": decision.rationale,
                "requested_by": who.actor,
                "email": who.email,
            }
            audit.append(conn, who.client_id, who.actor, "command.requested", command_id, detail, now)
            if agent.command_mode == "pull":
                command_rows.queue_for_pull(conn, who.client_id, command_id, agent.node_id, now, who.actor)
        if agent.command_mode != "pull":
            try:
                self._pool.submit(self._deliver, who.client_id, command_id, who.actor)
            except RuntimeError:  # shutting down: it stays queued and stops blocking after the TTL
                logger.warning("server stopping: command %s not sent", command_id)
        view = self.view(who.client_id, command_id)
        assert view is not None
        return view

    def view(self, client_id: str, command_id: str) -> CommandView | None:
        with self._store.read() as conn:
            return command_reads.get_command(conn, client_id, command_id)

    def _deliver(self, client_id: str, command_id: str, actor: str) -> None:
        """Push one command: mark it sent, POST it signed, record what became of it."""
        try:
            with self._store.write() as conn:
                client = tenants.get_client(conn, client_id)
                assert client is not None  # the command's tenant exists: it was just written
                url, secret = client.webhook_url, client.webhook_secret
                command = command_rows.mark_sent(conn, client_id, command_id, self._clock(), actor, url)
            result = self._dispatcher.send(url, secret, command)
        except Exception as exc:  # recorded, not lost: the person watching sees it failed
            logger.exception("remote command %s could not be delivered", command_id)
            result = ActionResult(status="error", output=f"delivery failed: {type(exc).__name__}", attempts=0)
        try:
            with self._store.write() as conn:
                command_rows.record_result(conn, client_id, command_id, result, self._clock(), actor, "push")
        except Exception:
            logger.exception("the result of remote command %s could not be recorded", command_id)
        logger.info("remote command %s: %s (%s)", command_id, result.status, redact(result.output[:200]))


def _refusal(request: CommandRequest, allowed_specs: tuple[Any, ...]) -> Refused | None:
    """The responder's own allowlist check (``policy.check_allowed``), answered as a 422."""
    too_long = request.problem()
    if too_long is not None:
        return Refused(422, {"message": too_long, "action": request.action[:MAX_ACTION]})
    if request.action in PASSIVE_ACTIONS:
        message = f"{request.action!r} is not an action to run"
        return Refused(422, {"message": message, "action": request.action})
    allowed = {spec.name: spec for spec in allowed_specs}
    proposed = Decision(
        source="user",
        action=request.action,
        target=request.target,
        params=dict(request.params),
        rationale="",
    )
    checked = policy.check_allowed(proposed, allowed)
    if checked is proposed:
        return None
    detail: dict[str, Any] = {"message": checked.rationale, "action": request.action}
    named = _PARAM.match(checked.rationale)
    if named is not None:
        detail["param"] = named.group(1)
    return Refused(422, detail)


#: How ``check_allowed`` names a refused parameter (its message starts so), for the ``param`` field.
_PARAM = re.compile(r"parameter '([^']*)'")


def _no_agent(node_id: str) -> Refused:
    return Refused(404, {"message": f"agent {node_id!r} not found", "node_id": node_id})


def _running(request: CommandRequest, command_id: str) -> Refused:
    message = f"{request.action!r} is already running on {request.node_id!r} (command {command_id})"
    return Refused(409, {"message": message, "action": request.action, "command_id": command_id})
