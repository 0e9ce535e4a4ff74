"""What every command group shares: the ``--config`` option and the settings it loads.

Why its own module: command groups (``cli/agent.py``, ``cli/metrics.py``, …) need these, and
``cli/main.py`` imports the groups to register them; if the groups imported ``cli/main.py`` in
turn, the two would form an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from infragent.config import Settings, load_settings
from infragent.errors import ConfigError

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML or TOML settings file.")]


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Settings from ``config``, the environment and the non-None ``overrides``; a bad value ends
    the command with exit code 2 and a message naming the key."""
    try:
        return load_settings(config, None, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        typer.echo(f"infragent: {exc}", err=True)
        raise typer.Exit(2) from exc
