"""Local stand-ins for the notification vendors: real HTTP servers on 127.0.0.1 (see ``base``).

``SlackStandIn`` (incoming webhooks and the Web API), ``DiscordStandIn``, ``TeamsStandIn``,
``PagerDutyStandIn`` (Events API v2) and ``WebhookReceiver`` (verifies Standard Webhooks
signatures); ``samples`` has sample messages and loopback channel dependencies.
"""

from support.standins.base import Received, Reply, StandIn
from support.standins.discord import DiscordStandIn
from support.standins.pagerduty import PagerDutyStandIn, PdAlert
from support.standins.slack import SlackMessage, SlackStandIn
from support.standins.teams import TeamsStandIn
from support.standins.webhook import Check, WebhookReceiver

__all__ = [
    "Check",
    "DiscordStandIn",
    "PagerDutyStandIn",
    "PdAlert",
    "Received",
    "Reply",
    "SlackMessage",
    "SlackStandIn",
    "StandIn",
    "TeamsStandIn",
    "WebhookReceiver",
]
