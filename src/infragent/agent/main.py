"""Entry point of the host agent: ``python -m infragent.agent run [--config PATH] [--once]``.

Why a lean entry of its own rather than only ``infragent agent run``: the ``infragent`` command is
a typer app whose module imports typer, rich, uvicorn and the server (tens of MB), and the agent's
budget is node_exporter's 19.7 MiB resident. This module imports the runtime and the stdlib
only — no argparse either (0.4 MB measured for three options) — and it is what the systemd unit and
the footprint benchmark run. ``infragent agent run`` calls the same ``run()``.

``__main__.py`` first runs ``lean.prepare()`` (hidden and deferred modules, one malloc arena: see
``infragent.agent.lean``), measured cuts of several MB resident.

Exit codes: 0 normal stop (SIGTERM/SIGINT), 2 configuration error, 1 cannot start (spool locked,
port in use).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from infragent.agent.settings import AgentSettings, load_settings
from infragent.errors import ConfigError, InfrAgentError

if TYPE_CHECKING:
    from infragent.agent.allowlist import Allowlist
    from infragent.agent.commands import CommandProcessor
    from infragent.agent.shipper import CommandHandler

logger = logging.getLogger("infragent.agent")

USAGE = """usage: python -m infragent.agent run [--config PATH] [--once]

  --config PATH   agent config file (.json, .toml, .yaml); environment variables override it
  --once          print one collection as JSON and exit (no server needed)
"""


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald and log shippers; secrets are never logged."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _parse_args(argv: Sequence[str]) -> tuple[Path | None, bool]:
    args = list(argv)
    if not args or args[0] != "run":
        raise SystemExit(USAGE)
    config: Path | None = None
    once = False
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--once":
            once = True
        elif arg in ("--config", "-c") and rest:
            config = Path(rest.pop(0))
        elif arg.startswith("--config="):
            config = Path(arg.split("=", 1)[1])
        elif arg in ("-h", "--help"):
            print(USAGE, end="")
            raise SystemExit(0)
        else:
            raise SystemExit(f"unknown argument {arg!r}\n{USAGE}")
    return config, once


def print_once(
    settings: AgentSettings,
    *,
    proc_root: Path = Path("/proc"),
    sleep: Callable[[float], None] = time.sleep,
    out: TextIO | None = None,
) -> None:
    """One collection as JSON; CPU figures cover a short sample (two readings, ``CPU_SAMPLE_S`` apart).

    ``proc_root`` and ``sleep`` are seams for tests with a canned ``/proc`` tree.
    """
    from infragent.agent.collectors import collect_once

    document = collect_once(
        settings.node_id,
        settings.region,
        settings.environment,
        settings.customer_id,
        proc_root=proc_root,
        sleep=sleep,
    )
    stream = out if out is not None else sys.stdout
    stream.write(msgspec.json.encode(document).decode() + "\n")
    stream.flush()


class DeferredProcessor:
    """The command processor, built when the first command arrives (pull mode).

    Why deferred: what it needs — signature verification (``hashlib``, ``hmac``, ``secrets``), the
    commands' wire schema with the shared model, the ledger — is about 0.5 MiB resident, and an
    agent with actions mostly waits for commands that may never come. The webhook secret is still
    checked at start (``check_secret``), so a bad one stops start-up as before.
    """

    def __init__(self, build: Callable[[], CommandProcessor]) -> None:
        self._build = build
        self._processor: CommandProcessor | None = None
        self._lock = threading.Lock()

    def get(self) -> CommandProcessor:
        with self._lock:
            if self._processor is None:
                self._processor = self._build()
            return self._processor


def process_deferred(deferred: DeferredProcessor, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The pull loop's handler: ``commands.process_pulled`` on the processor, built at first use."""
    from infragent.agent.commands import process_pulled

    return process_pulled(deferred.get(), headers, body)


def check_secret(secret: str) -> None:
    """The start-up check of ``INFRAGENT_WEBHOOK_SECRET``: ``whsec_`` + base64, as ``signing`` reads it.

    ``base64`` is loaded by the agent anyway (the dead-letter file); ``infragent.signing`` is not
    (see ``DeferredProcessor``), and it checks the secret again when the processor is built.
    """
    import base64
    import binascii

    try:
        base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("INFRAGENT_WEBHOOK_SECRET", "webhook secret is not valid base64") from exc


def _build_processor(settings: AgentSettings, allowlist: Allowlist) -> CommandProcessor:
    from infragent.agent.commands import CommandProcessor
    from infragent.agent.executor import Executor
    from infragent.agent.ledger import LazyLedger

    assert settings.webhook_secret is not None
    ledger = LazyLedger(settings.data_dir / "commands")  # sqlite3 is loaded by the first command
    return CommandProcessor(settings.webhook_secret, allowlist, ledger, Executor())


def command_setup(
    settings: AgentSettings,
) -> tuple[CommandHandler | None, CommandProcessor | DeferredProcessor | None, list[dict[str, Any]]]:
    """The pull handler, the command processor and the actions to report, from ``actions:``.

    This is the seam for signed command execution: with no ``actions:`` configured nothing is
    imported and the agent reports an empty allowlist; with actions, the allowlist, processor and
    executor load no pydantic, httpx or Starlette (checked by ``test_checks_lean.py``). With actions
    but no ``INFRAGENT_WEBHOOK_SECRET`` the actions are reported but no command can be verified, so
    none is fetched or served. In pull mode the handler feeds the long-poll loop with a processor
    built at the first command (``DeferredProcessor``); in push mode the processor is built now
    and served by ``agent/push.py``'s ``PushServer``. Both run the same processor (signature,
    replay ledger, allowlist, executor).
    """
    if not settings.actions:
        return None, None, []
    from infragent.agent.allowlist import Allowlist

    allowlist = Allowlist.from_config(settings.actions)
    actions = allowlist.advertised()
    if not settings.webhook_secret:
        logger.warning("actions configured but INFRAGENT_WEBHOOK_SECRET is not set: commands are off")
        return None, None, actions
    import functools

    if settings.command_mode == "push":
        return None, _build_processor(settings, allowlist), actions
    check_secret(settings.webhook_secret)
    deferred = DeferredProcessor(functools.partial(_build_processor, settings, allowlist))
    return functools.partial(process_deferred, deferred), deferred, actions


def serve(settings: AgentSettings) -> int:
    """Run the agent until SIGTERM or SIGINT; returns the exit code."""
    from infragent.agent.runtime import Agent

    handler, processor, actions = command_setup(settings)
    if isinstance(processor, DeferredProcessor):
        processor = None  # pull mode: the handler builds it
    # Block the stop signals before any thread starts (threads inherit the mask), then wait for
    # them synchronously: no handler racing the loops, no polling timer.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    push = processor if settings.command_mode == "push" else None
    agent = Agent(settings, command_handler=handler, push_processor=push, actions=actions)
    try:
        agent.start()
    except (InfrAgentError, OSError) as exc:
        logger.error("agent cannot start: %s", exc)
        agent.stop()
        return 1
    received = signal.sigwait(stop_signals)
    logger.info("received %s; stopping", signal.Signals(received).name)
    agent.stop()
    return 0


def run(config: Path | None, once: bool, environ: Mapping[str, str]) -> int:
    """``run`` for both entry points; configuration errors are printed and give exit code 2."""
    try:
        settings = load_settings(environ, config, require_server=not once)
    except ConfigError as exc:
        print(f"infragent-agent: {exc}", file=sys.stderr)
        return 2
    if once:
        print_once(settings)
        return 0
    configure_logging(settings.log_level)
    try:
        return serve(settings)
    except ConfigError as exc:  # the actions: section is validated when the commands are set up
        print(f"infragent-agent: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    config, once = _parse_args(sys.argv[1:] if argv is None else argv)
    return run(config, once, os.environ)
