"""``python -m infragent.agent run``: the lean agent entry (see ``infragent.agent.main``).

Two measured footprint measures happen here, before anything else is imported — the agent's
budget is node_exporter's 19.7 MiB resident and every one of them counts:

* ``_hashlib`` is hidden. The collectors import ``hashlib`` (to hash a fallback host id), and
  ``hashlib`` then loads OpenSSL's libcrypto: +3.5 MB resident. Without ``_hashlib`` it falls back
  to CPython's built-in SHA-2 and friends — the same digests, no OpenSSL. The agent uses no
  OpenSSL-only hash; an ``https://`` server URL still loads OpenSSL through ``ssl``.
* ``typing_extensions`` is hidden. msgspec imports it if it is installed (it is: pydantic needs
  it) and falls back to ``typing`` when it is not — its supported configuration on Python 3.11.
  That saves 0.3 MB resident. Checks and actions (from a config file) are validated by
  ``agent/schema.py``, not pydantic, so nothing in a pull-mode agent needs the real module; push
  mode serves its endpoint with Starlette, which does, and un-hides it (``agent/push.py``).
* On Linux the process re-executes itself once with ``MALLOC_ARENA_MAX=1``. glibc gives every
  thread that allocates its own malloc arena, and the agent's five threads each keep a peak's
  worth of pages in theirs (the collector's zlib state, the shipper's receive buffers): about
  0.2 MB resident. The variable is read only when a process starts, hence the re-exec (same pid,
  ~20 ms); it is removed again afterwards so that commands the agent runs do not inherit it. An
  operator who sets ``MALLOC_ARENA_MAX`` themselves is left alone.
"""

import os
import sys

_MARK = "_INFRAGENT_AGENT_ARENA"

if os.environ.pop(_MARK, None) is not None:
    os.environ.pop("MALLOC_ARENA_MAX", None)  # set by us for this process only
elif sys.platform == "linux" and "MALLOC_ARENA_MAX" not in os.environ and sys.executable:
    os.environ.update({"MALLOC_ARENA_MAX": "1", _MARK: "1"})
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 - ourselves, same argv
    except OSError:  # cannot re-exec (odd sandbox): run as we are, with glibc's default arenas
        os.environ.pop("MALLOC_ARENA_MAX", None)
        os.environ.pop(_MARK, None)

for _hidden in ("_hashlib", "typing_extensions"):
    if _hidden not in sys.modules:
        sys.modules[_hidden] = None  # type: ignore[assignment]

from infragent.agent.main import main  # noqa: E402 - the lines above must run first

sys.exit(main())
