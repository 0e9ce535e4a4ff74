"""Health checks: validated definitions, probes (the I/O), a pure state machine and a runner.

The agent builds a ``CheckRunner`` from ``parse_checks(config)`` and an ``on_transition`` that
turns each ``Transition`` into an event sent at once.
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
from infragent.agent.checks.state import CheckResult, CheckState, Transition, step

__all__ = [
    "CheckConfig",
    "CheckResult",
    "CheckRunner",
    "CheckState",
    "CommandCheck",
    "HttpCheck",
    "ProcessCheck",
    "SystemdCheck",
    "TcpCheck",
    "Transition",
    "parse_check",
    "parse_checks",
    "run_check",
    "step",
]
