from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scripted_server import API_KEY, HealthApp, ScriptedServer

from infragent import signing
from infragent.sdk import Client
from support.servers import serve


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[ScriptedServer, str]]:
    scripted = ScriptedServer()
    with serve(scripted.app) as url:
        try:
            yield scripted, url
        finally:
            scripted.reset()  # let any hanging request finish before uvicorn shuts down


@pytest.fixture
def server(_served: tuple[ScriptedServer, str]) -> Iterator[tuple[ScriptedServer, str]]:
    """A scripted InfrAgent server under real uvicorn, fresh for each test: (script, base_url)."""
    scripted, _ = _served
    scripted.reset()
    yield _served
    scripted.reset()


@pytest.fixture(scope="module")
def _health_served() -> Iterator[tuple[HealthApp, str]]:
    app = HealthApp()
    with serve(app.app) as url:
        yield app, f"{url}/health"


@pytest.fixture
def health(_health_served: tuple[HealthApp, str]) -> tuple[HealthApp, str]:
    """A user's app with a toggleable health route, healthy at the start: (app, health_url)."""
    _health_served[0].status = 200
    return _health_served


@pytest.fixture
def sleeps() -> list[float]:
    """Records what the client would have slept; nothing really waits."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., Client]]:
    """Build clients with recorded sleeps and a seeded RNG; all are closed after the test."""
    clients: list[Client] = []

    def make(base_url: str, **kwargs: Any) -> Client:
        kwargs.setdefault("webhook_secret", signing.new_secret())
        kwargs.setdefault("service", "shop")
        kwargs.setdefault("sleep", sleeps.append)
        kwargs.setdefault("rng", random.Random(7))
        secret = kwargs.pop("webhook_secret")
        client = Client(base_url, API_KEY, secret, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
