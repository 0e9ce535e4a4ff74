"""The ingest worker's import closure: no FastAPI, no Starlette, no route module.

Why it matters: a spawned worker imports ``server/ingest/pool.py`` afresh; a route imported there
would drag the web framework into every worker and tie the use cases back to HTTP (the cycle the
issue removed: the pool used to import ``server/api/metrics.py`` for its ingest function).
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
import infragent.server.ingest.pool
web = ("fastapi", "starlette", "infragent.server.api", "infragent.server.app")
print("\\n".join(sorted(m for m in sys.modules if m.startswith(web))))
"""


def test_the_worker_pool_imports_no_web_framework_and_no_route() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=os.environ.copy(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
