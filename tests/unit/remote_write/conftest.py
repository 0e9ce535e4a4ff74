from __future__ import annotations

from collections.abc import Iterator

import pytest
from remote_write_harness import FakeTime, Receiver

from support.servers import serve


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serve(receiver.app) as url:
        yield receiver, url


@pytest.fixture
def write_receiver(_served: tuple[Receiver, str]) -> Iterator[tuple[Receiver, str]]:
    """A scripted remote-write receiver under real uvicorn, fresh per test: (receiver, write_url)."""
    receiver, url = _served
    receiver.reset()
    yield receiver, f"{url}/api/v1/write"
    receiver.reset()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
