"""``infragent runbooks check FILE...``: runbook files checked before a server loads them.

Why in the CLI, without a server or database: like ``infragent rules check``, it belongs in an
editor's save hook and in CI next to the files. It accepts step runbooks and today's
single-action runbooks (``responder/step_file.py``). Exit codes are the contract for those
callers: 0 every file is valid, 2 a file is missing, unreadable or invalid, every problem printed
as ``FILE:LINE:COL: message`` (the form editors and CI annotations link to).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from infragent.responder.step_file import check_step_text

runbooks_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Check runbook files (docs/runbooks.md)."
)


@runbooks_app.callback()
def runbooks_group() -> None:
    """Check runbook files (docs/runbooks.md)."""  # a group even with one command: ``runbooks check``


FilesArg = Annotated[list[Path], typer.Argument(help="Runbook files (YAML).")]

#: The exit codes (module docstring).
OK, BROKEN = 0, 2


def _check_file(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        typer.echo(f"{path}:1:1: cannot read: {reason}", err=True)
        return False
    checked = check_step_text(text, str(path))
    for problem in checked.problems:
        typer.echo(str(problem), err=True)
    if not checked.ok:
        return False
    steps = sum(len(rb.steps) for rb in checked.runbooks)
    typer.echo(f"{path}: {len(checked.runbooks)} runbooks, {steps} steps OK")
    return True


@runbooks_app.command("check")
def check_command(files: FilesArg) -> None:
    """Validate runbook files: every problem as FILE:LINE:COL: message; exit 2 on any."""
    good = True
    for path in files:
        good = _check_file(path) and good
    raise typer.Exit(OK if good else BROKEN)
