"""``infragent rules check|test``: rule files checked and unit-tested before a server loads them.

Why in the CLI and without a server or database: like ``promtool check rules`` and ``promtool test
rules``, both belong in an editor's save hook and in CI, next to the rule files. Exit codes are the
contract for those callers: 0 all good, 1 a rule test failed, 2 a file is missing or invalid (every
problem printed as ``FILE:LINE:COL: message``, the form editors and CI annotations link to).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from infragent.rules.errors import RuleFileError
from infragent.rules.files import parse_rule_file
from infragent.rules.pack import PACK_FILE, PACK_SOURCE, PACK_TEST_FILE, pack_text
from infragent.rules.testing import run_test_file

rules_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Check and unit-test alert rule files (docs/rules.md)."
)

FilesArg = Annotated[list[Path] | None, typer.Argument(help="Rule files (check) or rule test files (test).")]
DefaultOpt = Annotated[bool, typer.Option("--default", help="Also the default rule pack the server ships.")]

#: The exit codes (module docstring).
OK, TEST_FAILED, BROKEN = 0, 1, 2


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        typer.echo(f"{path}: cannot read: {reason}", err=True)
        return None


def _check_text(text: str, source: str) -> bool:
    try:
        groups = parse_rule_file(text, source)
    except RuleFileError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        return False
    count = sum(len(g.rules) for g in groups)
    typer.echo(f"{source}: {len(groups)} groups, {count} rules OK")
    return True


@rules_app.command("check")
def check_command(files: FilesArg = None, default: DefaultOpt = False) -> None:
    """Validate rule files: every problem as FILE:LINE:COL: message; exit 2 on any."""
    if not files and not default:
        typer.echo("infragent rules check: name at least one FILE, or --default", err=True)
        raise typer.Exit(BROKEN)
    good = True
    if default:
        good = _check_text(pack_text(), PACK_SOURCE) and good
    for path in files or []:
        text = _read(path)
        good = text is not None and _check_text(text, str(path)) and good
    raise typer.Exit(OK if good else BROKEN)


@contextmanager
def pack_test_path() -> Iterator[Path]:
    """A path to the pack's test file with the pack beside it, as its ``rule_files`` expects.

    Why a context manager: from an unpacked install the package directory is used as it is; from a
    zip both files are copied to a temporary directory for as long as the tests run.
    """
    package = resources.files("infragent.rules")
    if isinstance(package, Path):
        yield package / PACK_TEST_FILE
        return
    with tempfile.TemporaryDirectory(prefix="infragent-pack-") as tmp:
        for name in (PACK_FILE, PACK_TEST_FILE):
            (Path(tmp) / name).write_text(
                package.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8"
            )
        yield Path(tmp) / PACK_TEST_FILE


@contextmanager
def _test_paths(files: list[Path], default: bool) -> Iterator[list[Path]]:
    with ExitStack() as stack:
        paths = [stack.enter_context(pack_test_path())] if default else []
        yield paths + files


@rules_app.command("test")
def test_command(files: FilesArg = None, default: DefaultOpt = False) -> None:
    """Run rule test files: PASS/FAIL per test with the diff; exit 1 on a failure, 2 on a broken file."""
    if not files and not default:
        typer.echo("infragent rules test: name at least one FILE, or --default", err=True)
        raise typer.Exit(BROKEN)
    broken = failed = False
    with _test_paths(list(files or []), default) as paths:
        for path in paths:
            if not path.is_file():
                typer.echo(f"{path}: cannot read: No such file", err=True)
                broken = True
                continue
            try:
                report = run_test_file(path)
            except RuleFileError as exc:
                for problem in exc.problems:
                    typer.echo(str(problem), err=True)
                broken = True
                continue
            for result in report.results:
                typer.echo(f"{'PASS' if result.passed else 'FAIL'}  {path}: {result.name}")
                if not result.passed:
                    failed = True
                    for line in result.diff.splitlines():
                        typer.echo(f"      {line}")
            passed = sum(r.passed for r in report.results)
            typer.echo(f"{path}: {passed} of {len(report.results)} tests passed")
    raise typer.Exit(BROKEN if broken else TEST_FAILED if failed else OK)
