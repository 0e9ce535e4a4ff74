from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.databases import pg_schema_url, sqlite_url


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may depend on the developer's INFRAGENT_* variables."""
    for name in list(os.environ):
        if name.startswith("INFRAGENT_") and name != "INFRAGENT_TEST_PG_DSN":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store test runs on both databases."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with pg_schema_url() as url:
            yield url
