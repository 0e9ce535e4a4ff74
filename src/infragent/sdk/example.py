"""A runnable example app using the SDK: one allowed action, the signed-command webhook and a health route.

Why it ships: the README's tour needs a receiver that the responder can send a real signed command
to. Without one, the tour can only show ``escalate``. It is also the smallest complete use of the
SDK's public API (``Client``, ``@client.action``, ``register_actions``, ``webhook_endpoint``), so
it doubles as a template::

    export API_KEY=ia_… WEBHOOK_SECRET=whsec_…     # from POST /api/v1/clients/register
    python -m infragent.sdk.example --server http://127.0.0.1:8470 --port 9000

It registers its actions *before* it starts serving, so once ``GET /health`` answers, the server
knows what this app allows. The ``restart`` action restarts nothing real. It counts restarts and
says so, so that running the example changes nothing on the machine. The credentials come from the
environment (``API_KEY``, ``WEBHOOK_SECRET``) or from the options. Putting them in the environment
keeps them out of ``ps``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infragent.sdk.client import Client
from infragent.sdk.webhook import DEFAULT_PATH, Command


def build_app(client: Client) -> Starlette:
    """The example app: ``GET /health`` and the command webhook at ``POST /webhooks/agent``."""
    restarts = itertools.count(1)

    @client.action("restart", description="Restart the example app's worker (a pretend restart)")
    def restart(command: Command) -> str:
        return f"restarted {command.target or client.service} (pretend restart #{next(restarts)})"

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": client.service, "node_id": client.node_id})

    return Starlette(
        routes=[
            Route("/health", health),
            Route(DEFAULT_PATH, client.webhook_endpoint(), methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m infragent.sdk.example", description=summary)
    parser.add_argument("--server", default="http://127.0.0.1:8470", help="InfrAgent server base URL")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="default: $API_KEY")
    parser.add_argument(
        "--webhook-secret", default=os.environ.get("WEBHOOK_SECRET"), help="default: $WEBHOOK_SECRET"
    )
    parser.add_argument("--service", default="web", help="service name (node id: <hostname>/<service>)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--data-dir", type=Path, default=None, help="the SDK's command ledger directory")
    args = parser.parse_args(argv)
    if not args.api_key or not args.webhook_secret:
        parser.error("an API key and a webhook secret are needed ($API_KEY, $WEBHOOK_SECRET or the options)")
    logging.basicConfig(level=logging.INFO, format="example app: %(message)s")
    client = Client(
        args.server, args.api_key, args.webhook_secret, service=args.service, data_dir=args.data_dir
    )
    with client:
        app = build_app(client)
        client.register_actions()
        url = f"http://{args.host}:{args.port}"
        where = f"webhook at {url}{DEFAULT_PATH}, health at {url}/health"
        print(f"example app: allows 'restart'; {where}", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
