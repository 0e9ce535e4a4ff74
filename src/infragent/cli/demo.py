"""``infragent demo``: play the whole loop on this machine and exit 0 only when healed.

Registered as a command by ``cli/main.py``'s ``main``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    database_url: Annotated[str, typer.Option(help="Store URL; default: SQLite in a temp dir.")] = "",
    interval: Annotated[float, typer.Option(help="SDK health-check interval, seconds.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 60.0,
) -> None:
    """A sample app crashes; the SDK reports; the responder restarts it through a signed webhook."""
    from infragent.demo.story import run_demo

    def say(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    result = run_demo(database_url, interval_s=interval, timeout_s=timeout, say=say)
    if as_json:
        print(json.dumps(result.as_json()))
    elif result.healed and result.detected_at and result.healthy_at:
        print(f"healed: {result.healthy_at - result.detected_at:.3f} s from detection to a healthy app")
    if not result.healed:
        raise typer.Exit(1)
