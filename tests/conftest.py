from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infragent.model import ActionSpec
from infragent.store.records import Registration
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client, pg_schema_url, register_agent, sqlite_url
from support.responders import _close_responders, receiver  # noqa: F401 - shared fixtures


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


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture
def client_reg(store: SqlStore) -> Registration:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    register_agent(
        store,
        reg.client.id,
        "host-1/web",
        kind="sdk",
        command_mode="push",
        actions=[ActionSpec("restart", {})],
        labels={},
        now=1000.0,
    )
    return reg
