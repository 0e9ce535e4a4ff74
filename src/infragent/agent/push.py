"""The two ways a command reaches the agent, both ending in the same ``CommandProcessor``.

Why both modes share one code path: push (the server POSTs a signed webhook to the agent) and
pull (the agent long-polls the server and fetches the same signed messages) differ only in who
opens the connection. Signature, replay, ledger, allowlist and execution must not differ, so each
transport is a thin adapter around ``CommandProcessor.handle``:

* ``create_push_app`` — a Starlette ASGI app (sibling of the SDK's ``create_webhook_app``); the body
  is read with the SDK's capped reader, so an oversized request is refused without buffering it,
  and the blocking run happens in a worker thread so the event loop keeps answering.
* ``process_pulled`` — what the pull loop calls for each fetched command; it returns the result,
  the HTTP-equivalent status and the report to send back to the server. It is defined in
  ``commands.py`` (re-exported here), so that pull mode never imports Starlette.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infragent.agent.commands import REPORT_FIELDS, CommandProcessor, process_pulled
from infragent.sdk.webhook import read_capped

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/commands"
__all__ = ["DEFAULT_PATH", "REPORT_FIELDS", "create_push_app", "process_pulled"]


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
