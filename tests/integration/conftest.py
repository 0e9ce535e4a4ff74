from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.model import ActionSpec
from infragent.store.records import Registration
from infragent.store.sql import SqlStore, open_store


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture
def client_reg(store: SqlStore) -> Registration:
    reg = store.create_client("ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    store.register_agent(
        reg.client.id,
        "host-1/web",
        kind="sdk",
        command_mode="push",
        actions=[ActionSpec("restart", {})],
        labels={},
        now=1000.0,
    )
    return reg
