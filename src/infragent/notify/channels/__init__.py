"""Channel adapters: one ``send(message) -> DeliveryResult`` per kind (``notify.model.Channel``).

``build_channel`` is the one place a stored channel becomes an adapter. Each adapter returns what
became of a send as a value (delivered, retry, failed), never an exception, so the delivery worker
records every attempt the same way. HTTP adapters share ``http.post`` (the outcome mapping) and
``base.ChannelDeps`` (the guarded client); ``email`` and ``apprise`` are imported only when such a
channel is built, so a worker that never sends e-mail does not load SMTP or apprise.

``inapp`` has no adapter: the delivery worker writes in-app notifications (the inbox) itself.
"""

from __future__ import annotations

import importlib

from infragent.notify.channels.base import ChannelDeps
from infragent.notify.model import Channel, ChannelConfig

#: kind → (module, class) under ``infragent.notify.channels``; each class takes ``(config, deps)``.
ADAPTERS: dict[str, tuple[str, str]] = {
    "webhook": ("webhook", "WebhookChannel"),
    "slack": ("slack", "SlackChannel"),
    "slack_bot": ("slack_bot", "SlackBotChannel"),
    "discord": ("discord", "DiscordChannel"),
    "teams": ("teams", "TeamsChannel"),
    "pagerduty": ("pagerduty", "PagerDutyChannel"),
    "email": ("email", "EmailChannel"),
    "apprise": ("apprise_channel", "AppriseChannel"),
}


def build_channel(config: ChannelConfig, deps: ChannelDeps) -> Channel:
    """The adapter for ``config``; ``ValueError`` for ``inapp`` (not sent through an adapter) and
    for an unknown kind."""
    if config.kind == "inapp":
        raise ValueError("in-app notifications are written by the delivery worker, not sent by a channel")
    try:
        module_name, class_name = ADAPTERS[config.kind]
    except KeyError:
        raise ValueError(f"unknown channel kind {config.kind!r}") from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    adapter: Channel = getattr(module, class_name)(config, deps)
    return adapter


__all__ = ["ADAPTERS", "ChannelDeps", "build_channel"]
