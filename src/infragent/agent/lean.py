"""What ``python -m infragent.agent`` does before anything else is imported, to stay small.

The agent's budget is node_exporter's resident memory (about 19.5 MiB, see docs/agent.md
"Footprint"), and a bare CPython 3.11 with ``site`` is already 8.7 MiB of it. Every measure here
was measured on the running agent (``bench/agent_footprint.py``) and kept because it paid:

* **Hidden modules** (``HIDDEN``): ``_hashlib`` — ``hashlib`` would load OpenSSL's libcrypto
  (+3.5 MB) where CPython's built-in SHA-2 and friends give the same digests; an ``https://``
  server URL still loads OpenSSL through ``ssl``. ``typing_extensions`` (0.3 MB) — msgspec falls
  back to ``typing``, its supported configuration on 3.11; push mode serves with Starlette, which
  needs it, and un-hides it (``agent/push.py``).
* **Deferred modules** (``DEFERRED``): modules that others import at their top but that the
  agent uses rarely or never once started. Each is registered as a stand-in that imports the real
  module at the first attribute looked up on it, so nothing behaves differently, only later:
  ``inspect`` with ``ast`` and ``dis`` (``dataclasses`` imports it only to describe a class
  without a docstring: every dataclass the agent loads at start has one), ``ipaddress``
  (``urllib.parse`` checks bracketed IPv6 hosts with it), ``tokenize`` (``linecache`` reads
  source files with it when a traceback is formatted) — together 1.1-1.2 MiB — and
  ``msgspec.inspect`` (0.1 MiB; ``msgspec`` imports it for JSON schemas, which the agent never
  makes).
* **One glibc malloc arena** (``MALLOC_ARENA_MAX=1``): glibc gives every thread that allocates
  its own arena, and the agent's threads each keep a peak's worth of pages in theirs (the
  collector's zlib state, the shipper's receive buffers): about 0.2 MB. The variable is read when
  a process starts, so the agent re-executes itself once (same pid, ~20 ms); it is removed again
  afterwards so that commands the agent runs do not inherit it. An operator who sets
  ``MALLOC_ARENA_MAX`` themselves is left alone. Every way of starting the agent goes through
  here (the systemd unit ``install.py`` writes runs ``python -m infragent.agent run``), so no unit
  or wrapper has to set the variable.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types

HIDDEN = ("_hashlib", "typing_extensions")
DEFERRED = ("inspect", "ipaddress", "tokenize", "msgspec.inspect")
#: Set in the environment of the re-executed agent only, so it knows the arena limit is ours.
REEXEC_MARK = "_INFRAGENT_AGENT_ARENA"

_loading = threading.RLock()


class DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module until a name is looked up on it; then imports it.

    The real module replaces the stand-in in ``sys.modules``, and its names are copied onto the
    stand-in, so a module that imported the stand-in (``dataclasses``' global ``inspect``) finds
    them directly from then on.
    """

    def __getattr__(self, name: str) -> object:
        if name == "__path__":  # asked by the import system of a package; none of these is one
            raise AttributeError(name)
        with _loading:
            module_name = self.__dict__["__name__"]
            real = sys.modules.get(module_name)
            if real is None or real is self:
                sys.modules.pop(module_name, None)
                real = importlib.import_module(module_name)
            for key, value in real.__dict__.items():
                if key not in ("__name__", "__spec__", "__loader__"):
                    self.__dict__.setdefault(key, value)
        return getattr(real, name)


def defer(names: tuple[str, ...] = DEFERRED) -> None:
    """Register a ``DeferredModule`` for each module not imported yet."""
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = DeferredModule(name)


def hide(names: tuple[str, ...] = HIDDEN) -> None:
    """Make ``import NAME`` raise ``ImportError`` (the importers fall back), unless already loaded."""
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def reexec_with_one_arena() -> None:
    """On Linux, re-execute this process once with ``MALLOC_ARENA_MAX=1`` (see the module doc).

    Returns in the re-executed process (or when re-executing is not possible or not wanted).
    """
    if os.environ.pop(REEXEC_MARK, None) is not None:
        os.environ.pop("MALLOC_ARENA_MAX", None)  # set by us for this process only
        return
    if sys.platform != "linux" or "MALLOC_ARENA_MAX" in os.environ or not sys.executable:
        return
    os.environ.update({"MALLOC_ARENA_MAX": "1", REEXEC_MARK: "1"})
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 - ourselves, same argv
    except OSError:  # cannot re-exec (odd sandbox): run as we are, with glibc's default arenas
        os.environ.pop("MALLOC_ARENA_MAX", None)
        os.environ.pop(REEXEC_MARK, None)


def prepare() -> None:
    """Everything above, in order: called first thing by ``python -m infragent.agent``."""
    reexec_with_one_arena()
    hide()
    defer()
