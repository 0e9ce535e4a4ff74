"""Local stand-ins for the notification vendors (real HTTP servers on 127.0.0.1); see ``base``."""

from support.standins.base import Received, Reply, StandIn

__all__ = ["Received", "Reply", "StandIn"]
