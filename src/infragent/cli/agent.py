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

#: Registered as ``infragent agent`` by ``cli/main.py``'s ``main``.
agent_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The host agent.")


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


@agent_app.command("install")
def install_agent(
    server: Annotated[str, typer.Option("--server", help="The InfrAgent server's URL.")],
    key: Annotated[
        str,
        typer.Option(
            "--key",
            help="An API key: the admin key shown at registration (an ingest-only key is minted from it "
            "for this host) or an ingest key (written as given).",
        ),
    ],
    node_id: Annotated[str | None, typer.Option(help="This host's id (default: its hostname).")] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="The client's webhook secret, to verify commands.")
    ] = None,
    mode: Annotated[str, typer.Option(help="How commands reach the agent: pull or push.")] = "pull",
    config_dir: Annotated[Path, typer.Option(help="Where agent.env goes.")] = Path("/etc/infragent"),
    unit_dir: Annotated[Path, typer.Option(help="Where the systemd unit goes.")] = Path(
        "/etc/systemd/system"
    ),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be written; write nothing.")
    ] = False,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Write the files but do not enable or start the unit.")
    ] = False,
) -> None:
    """Install the agent as a systemd service: agent.env (0600) and infragent-agent.service."""
    import dataclasses

    from infragent.agent.install import InstallPlan, agent_key, install, render_env, render_unit, validate
    from infragent.errors import ConfigError

    plan = InstallPlan(
        server_url=server,
        api_key=key,
        node_id=node_id,
        webhook_secret=webhook_secret,
        command_mode=mode,
        config_dir=config_dir,
        unit_dir=unit_dir,
    )
    try:
        validate(plan)
        if dry_run:
            masked = render_env(plan).replace(key, key[:16] + "…")
            typer.echo(
                "# --key is checked with the server when installing for real: from an admin key an"
                " ingest-only key is minted for this host and written instead"
            )
            typer.echo(f"# would write {plan.env_path} (mode 0600)\n{masked}")
            typer.echo(f"# would write {plan.unit_path}\n{render_unit(plan)}")
            typer.echo(
                "# then, where systemd runs: systemctl daemon-reload; systemctl enable --now infragent-agent"
            )
            return
        chosen = agent_key(plan)
        typer.echo(chosen.note)
        plan = dataclasses.replace(plan, api_key=chosen.api_key)
        for step in install(plan, start=not no_start):
            typer.echo(step)
    except ConfigError as exc:
        typer.echo(f"infragent: {exc}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.echo(f"infragent: cannot install: {exc}", err=True)
        raise typer.Exit(1) from exc


@agent_app.command("uninstall")
def uninstall_agent(
    config_dir: Annotated[Path, typer.Option(help="Where agent.env is.")] = Path("/etc/infragent"),
    unit_dir: Annotated[Path, typer.Option(help="Where the systemd unit is.")] = Path("/etc/systemd/system"),
    purge: Annotated[
        bool, typer.Option("--purge", help="Also remove the agent's data (spool, ledger).")
    ] = False,
) -> None:
    """Stop and remove the agent's service and settings (its data too with --purge)."""
    from infragent.agent.install import uninstall

    data = Path("/var/lib/infragent-agent") if purge else None
    for step in uninstall(config_dir, unit_dir, purge_data=data):
        typer.echo(step)
