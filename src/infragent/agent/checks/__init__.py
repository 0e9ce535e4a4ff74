"""Health checks: validated definitions, probes (the I/O) and a runner around the shared up/down
machine of :mod:`infragent.health` (re-exported here).

The agent builds a ``CheckRunner`` from ``parse_checks(config)`` and an ``on_transition`` that
turns each ``CheckTransition`` into an event sent at once.
"""

from infragent.agent.checks.config import (
    CheckConfig,
    CommandCheck,
    HttpCheck,
    ProcessCheck,
    SystemdCheck,
    TcpCheck,
    parse_check,
    parse_checks,
)
from infragent.agent.checks.probes import run_check
from infragent.agent.checks.runner import CheckRunner
from infragent.health import CheckResult, CheckState, CheckTransition, step

__all__ = [
    "CheckConfig",
    "CheckResult",
    "CheckRunner",
    "CheckState",
    "CheckTransition",
    "CommandCheck",
    "HttpCheck",
    "ProcessCheck",
    "SystemdCheck",
    "TcpCheck",
    "parse_check",
    "parse_checks",
    "run_check",
    "step",
]
