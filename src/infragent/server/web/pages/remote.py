"""Remote control on the host page: choose an action, fill its parameters, confirm, watch it run.

The host page (``pages/hosts.py``) includes ``hosts/_remote.html`` for those who may send commands;
these handlers answer its htmx requests with fragments:

* ``GET /hosts/{host}/commands/params``: the parameter inputs of the chosen action;
* ``POST /hosts/{host}/commands`` without ``confirm``: the checks the command will pass (the same
  as the API's, ``RemoteControl.check``) and a confirm fragment stating exactly what will run;
  with ``confirm=1``: the command sent (``RemoteControl.send``) as ``hosts/_command.html``;
* ``GET /hosts/{host}/commands/{command_id}``: that fragment again, which refreshes itself on
  every ``live:command`` event of the stream and, as a fallback without the stream, every second,
  until the command is finished;
* ``GET /hosts/{host}/commands``: the host's recent commands.

Why refusals are answered 200 to htmx: htmx swaps no 4xx answer, and the person must see why the
command was refused; any other client gets the refusal's own status (404, 409, 422).

Why the host is checked: an agent belongs to a host when its node id is the host or
``<host>/<service>`` (``store.command_reads.host_agents``); a command or agent of another host (or
tenant) is 404 here, so a page URL cannot reach past its host.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.remote import CommandRequest, Refused
from infragent.server.web.deps import page
from infragent.server.web.templating import is_htmx, render
from infragent.store import command_reads, dashboard
from infragent.store.records import AgentRecord

router = APIRouter()

#: Form fields carrying the action's parameters: ``param-<name>``.
PARAM_PREFIX = "param-"
RECENT = 10


def _agents(svc: AppServices, who: Principal, host: str) -> list[AgentRecord]:
    """The host's agents (its apps' SDK agents count: a host may run no host agent); 404 for a host
    the tenant does not have, another tenant's answered as one that does not exist."""
    with svc.store.read() as conn:
        found = command_reads.host_agents(conn, who.client_id, host)
        if not found and dashboard.get_host(conn, who.client_id, host, svc.clock()) is None:
            raise HTTPException(status_code=404, detail=f"host {host!r} not found")
    return found


def _request(form: FormData) -> CommandRequest:
    """The command the form asks for; a blank parameter is one not given."""

    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    params = {
        key.removeprefix(PARAM_PREFIX): value
        for key, value in form.multi_items()
        if key.startswith(PARAM_PREFIX) and isinstance(value, str) and value != ""
    }
    return CommandRequest(
        node_id=text("node_id"),
        action=text("action"),
        params=params,
        target=text("target") or None,
        reason=text("reason"),
    )


def _refused(request: Request, who: Principal, host: str, refused: Refused) -> HTMLResponse:
    return render(
        request,
        "remote/refused.html",
        who,
        status_code=200 if is_htmx(request) else refused.status,
        host=host,
        refused=refused,
    )


@router.get("/hosts/{host}/commands/params", response_class=HTMLResponse)
def action_params(
    request: Request,
    host: str,
    who: Annotated[Principal, Depends(page("commands.send"))],
    svc: Annotated[AppServices, Depends(services)],
    node_id: str = "",
    action: str = "",
) -> HTMLResponse:
    """The inputs of ``action``'s parameters (none for an action this host's agent does not have)."""
    agent = next((a for a in _agents(svc, who, host) if a.node_id == node_id), None)
    spec = next((s for s in agent.actions if s.name == action), None) if agent else None
    return render(request, "remote/params.html", who, action=spec)


@router.post("/hosts/{host}/commands", response_class=HTMLResponse)
async def run_command(
    request: Request,
    host: str,
    who: Annotated[Principal, Depends(page("commands.send"))],
    svc: Annotated[AppServices, Depends(services)],
) -> HTMLResponse:
    """First the confirm step (checked, nothing written), then, confirmed, the command sent."""
    form = await request.form()
    wanted = _request(form)
    on_host = {a.node_id for a in _agents(svc, who, host)}
    if wanted.node_id not in on_host:
        message = f"agent {wanted.node_id!r} not found on {host!r}"
        return _refused(request, who, host, Refused(404, {"message": message}))
    if form.get("confirm") != "1":
        refused = svc.remote.check(who, wanted)
        if refused is not None:
            return _refused(request, who, host, refused)
        return render(request, "remote/confirm.html", who, host=host, wanted=wanted)
    outcome = svc.remote.send(who, wanted)
    if isinstance(outcome, Refused):
        return _refused(request, who, host, outcome)
    return render(request, "hosts/_command.html", who, status_code=202, host=host, command=outcome)


@router.get("/hosts/{host}/commands", response_class=HTMLResponse)
def recent_commands(
    request: Request,
    host: str,
    who: Annotated[Principal, Depends(page("commands.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> HTMLResponse:
    node_ids = [a.node_id for a in _agents(svc, who, host)]
    with svc.store.read() as conn:
        found = command_reads.recent_commands(conn, who.client_id, node_ids, RECENT)
    return render(request, "remote/recent.html", who, host=host, commands=found, when=_when)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@router.get("/hosts/{host}/commands/{command_id}", response_class=HTMLResponse)
def command_status(
    request: Request,
    host: str,
    command_id: str,
    who: Annotated[Principal, Depends(page("commands.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> HTMLResponse:
    """The command's status and output; it keeps refreshing itself until finished."""
    view = svc.remote.view(who.client_id, command_id)
    if view is None or view.node_id not in {a.node_id for a in _agents(svc, who, host)}:
        message = f"command {command_id!r} not found on {host!r}"
        return _refused(request, who, host, Refused(404, {"message": message}))
    return render(request, "hosts/_command.html", who, host=host, command=view)
