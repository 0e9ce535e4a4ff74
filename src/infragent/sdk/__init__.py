"""InfrAgent SDK: embed in an app to report events, monitor its health and receive commands.

Quick start (see docs/sdk.md)::

    from infragent.sdk import Client, Command

    client = Client("https://infragent.example", api_key, webhook_secret, service="shop")

    @client.action("restart", params={"name": r"[a-z0-9_-]+"})
    def restart(command: Command) -> str:
        ...

    client.register_actions()
    client.monitor("http://127.0.0.1:8000/healthz").start()
"""

from infragent.backoff import RetryPolicy
from infragent.model import ActionSpec
from infragent.sdk.client import Client, ReportError
from infragent.sdk.monitor import APP_DOWN, APP_RECOVERED, EventReporter, Monitor, Probe, Transition
from infragent.sdk.webhook import (
    DEFAULT_PATH,
    MAX_BODY_BYTES,
    Action,
    ActionRegistry,
    Command,
    Handler,
    create_webhook_app,
    webhook_endpoint,
)

__all__ = [
    "APP_DOWN",
    "APP_RECOVERED",
    "DEFAULT_PATH",
    "MAX_BODY_BYTES",
    "Action",
    "ActionRegistry",
    "ActionSpec",
    "Client",
    "Command",
    "EventReporter",
    "Handler",
    "Monitor",
    "Probe",
    "ReportError",
    "RetryPolicy",
    "Transition",
    "create_webhook_app",
    "webhook_endpoint",
]
