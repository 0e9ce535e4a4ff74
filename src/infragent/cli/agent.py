"""``infragent agent run``: the host agent from the main CLI (same code as ``python -m infragent.agent``).

Why the runtime is imported inside the command: ``infragent`` loads every command group's module
at start, and the server's commands must not pay for psutil and the agent's threads. Systemd units
and footprint measurements use ``python -m infragent.agent run``, which skips typer entirely.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from infragent.cli.main import app

agent_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The host agent.")
app.add_typer(agent_app, name="agent")


@agent_app.command("run")
def run_agent(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Agent config file (.json, .toml, .yaml).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one collection as JSON and exit.")] = False,
) -> None:
    """Collect host metrics, spool them and ship them to the server (see docs/agent.md)."""
    from infragent.agent.main import run

    code = run(config, once, os.environ)
    if code:
        raise typer.Exit(code)
