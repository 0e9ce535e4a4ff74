"""A bug in a route is a JSON 500 in the API's error shape that names nothing of the failure.

Why a route added by the test: no route of ours fails on purpose, and the answer under test is the
app's (``server/app.py`` over ``server/errors.py``), whichever route a bug is in. The exception's
text stands for what must never reach a client: SQL, parameters, a driver's message.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.exc import IntegrityError

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.server.errors import ROUTE_INTERNAL_ERROR
from support.servers import serve

SECRET = "SELECT api_key FROM api_keys WHERE secret = 'hunter2'"


def _bug() -> None:
    raise ValueError(SECRET)


def _database_bug() -> None:
    raise IntegrityError(SECRET, {"secret": "hunter2"}, Exception("duplicate key value"))


def test_a_bug_is_a_json_500_naming_no_sql(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    app.add_api_route("/bug", _bug)
    app.add_api_route("/database-bug", _database_bug)
    with serve(app) as base:
        for path in ("/bug", "/database-bug"):
            # a connection each: uvicorn closes one on which an exception escaped the app (the bug's)
            r = httpx.get(base + path, timeout=10)
            assert (r.status_code, r.json()) == (500, {"detail": ROUTE_INTERNAL_ERROR}), path
            assert "hunter2" not in r.text and "retry-after" not in r.headers
        scrape = httpx.get(base + "/metrics", timeout=10).text
    counted = [line for line in scrape.splitlines() if 'status="500"' in line]
    assert any('route="/bug"' in line and line.endswith(" 1.0") for line in counted)
