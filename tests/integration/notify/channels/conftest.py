"""Every channel test talks to a real stand-in on loopback through a guarded client allowed to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.notify.channels.base import ChannelDeps
from support.standins.samples import NOW, loopback_deps


@pytest.fixture
def deps() -> Iterator[ChannelDeps]:
    """Loopback allowed, a 5 s timeout, the clock fixed at ``samples.NOW``."""
    with loopback_deps(clock=lambda: NOW) as d:
        yield d


@pytest.fixture
def strict_deps() -> Iterator[ChannelDeps]:
    """The default policy (no ``webhook_allowed_networks``): loopback is refused."""
    from infragent.outbound.policy import OutboundPolicy

    with loopback_deps(policy=OutboundPolicy(), clock=lambda: NOW) as d:
        yield d
