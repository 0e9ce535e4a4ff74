"""The two ways a command reaches the agent, both ending in the same ``CommandProcessor``.

Why both modes share one code path: push (the server POSTs a signed webhook to the agent) and
pull (the agent long-polls the server and fetches the same signed messages) differ only in who
opens the connection. Signature, replay, ledger, allowlist and execution must not differ, so each
transport is a thin adapter around ``CommandProcessor.handle``:

* ``create_push_app`` — a Starlette ASGI app (sibling of the SDK's ``create_webhook_app``); the body
  is read with the SDK's capped reader, so an oversized request is refused without buffering it,
  and the blocking run happens in a worker thread so the event loop keeps answering.
* ``process_pulled`` — what the pull loop calls for each fetched command; it returns the result,
  the HTTP-equivalent status and the report to send back to the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infragent.agent.commands import CommandProcessor
from infragent.sdk.webhook import read_capped

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/commands"
#: The fields of the server's result report (``server/api/commands.py`` ``ResultIn``).
REPORT_FIELDS = ("status", "output", "exit_code", "duration_ms", "duplicate")


def create_push_app(processor: CommandProcessor, path: str = DEFAULT_PATH) -> Starlette:
    """An ASGI app serving ``POST {path}`` for push mode; run it with uvicorn on the agent host."""

    async def endpoint(request: Request) -> Response:
        body = await read_capped(request, processor.max_body_bytes)
        if body is None:
            status, result = processor.refuse_oversize(request.headers)
        else:
            headers = dict(request.headers)
            status, result = await run_in_threadpool(processor.handle, headers, body)
        return JSONResponse(result, status_code=status)

    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])


def process_pulled(processor: CommandProcessor, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Handle one command fetched by the pull loop; return what to report back to the server.

    ``headers`` are the Standard Webhooks headers the server attached to the command and ``body``
    its raw bytes, exactly as signed: re-encoding the JSON would break the signature.

    Returns ``{"command_id", "http_status", "result", "report"}``: ``result`` is what push mode
    would answer; ``report`` is the body for ``POST /api/v1/commands/{command_id}/result`` (only
    the server's ``ResultIn`` fields), or None when there is nothing to report yet (the id is still
    running in this agent; that run reports when it ends). Refusals are reported too, as
    ``rejected``, so the server does not wait forever for a command the agent will never run.
    """
    status, result = processor.handle(headers, body)
    command_id = result.get("command_id")
    report = None
    if result["status"] != "running":
        report = {key: result[key] for key in REPORT_FIELDS if key in result}
    return {"command_id": command_id, "http_status": status, "result": result, "report": report}
