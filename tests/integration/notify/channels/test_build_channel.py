"""``build_channel`` makes the adapter of every HTTP kind, refuses ``inapp``, and imports e-mail and
apprise only when such a channel is built; ``deps_from_settings`` builds the guarded client from
``webhook_allowed_networks`` and ``notify_timeout_s``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from infragent.config import Settings
from infragent.notify.channels import ADAPTERS, build_channel
from infragent.notify.channels.base import ChannelDeps, deps_from_settings
from infragent.notify.channels.discord import DiscordChannel
from infragent.notify.channels.pagerduty import PagerDutyChannel
from infragent.notify.channels.slack import SlackChannel
from infragent.notify.channels.slack_bot import SlackBotChannel
from infragent.notify.channels.teams import TeamsChannel
from infragent.notify.channels.webhook import WebhookChannel
from infragent.notify.config import parse_channel
from infragent.notify.model import CHANNEL_KINDS, ChannelKind
from support.standins import DiscordStandIn, PagerDutyStandIn, SlackStandIn, TeamsStandIn, WebhookReceiver
from support.standins.samples import channel_config, message


@pytest.mark.parametrize(
    ("kind", "adapter"),
    [
        ("webhook", WebhookChannel),
        ("slack", SlackChannel),
        ("slack_bot", SlackBotChannel),
        ("discord", DiscordChannel),
        ("teams", TeamsChannel),
        ("pagerduty", PagerDutyChannel),
    ],
)
def test_each_http_kind_gets_its_adapter(deps: ChannelDeps, kind: ChannelKind, adapter: type) -> None:
    assert isinstance(build_channel(channel_config(kind), deps), adapter)


def test_every_kind_but_inapp_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(CHANNEL_KINDS) - {"inapp"}


def test_inapp_is_refused(deps: ChannelDeps) -> None:
    with pytest.raises(ValueError, match="delivery worker"):
        build_channel(channel_config("inapp"), deps)


def test_the_package_loads_no_adapter_until_one_is_built() -> None:
    code = (
        "import sys, infragent.notify.channels as c; "
        "print(sorted(m for m in sys.modules if m.startswith('infragent.notify.channels.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['infragent.notify.channels.base']"


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver("whsec_" + "QUJD" * 8) as receiver:
        yield receiver


def test_deps_from_settings_allow_what_the_operator_lists(hook: WebhookReceiver) -> None:
    config = channel_config("webhook", {"url": hook.hook_url}, {"secret": hook.secret})
    allowed = deps_from_settings(Settings(webhook_allowed_networks=("127.0.0.0/8",), notify_timeout_s=3.0))
    strict = deps_from_settings(Settings())
    try:
        assert allowed.timeout_s == 3.0 and allowed.policy.judge("127.0.0.1").allowed
        assert build_channel(config, allowed).send(message()).outcome == "delivered"
        refused = build_channel(config, strict).send(message())
        assert refused.outcome == "failed" and "webhook_allowed_networks" in (refused.error or "")
    finally:
        allowed.close()
        strict.close()
    assert [c.verified for c in hook.checks] == [True]


def test_channels_as_the_config_core_validates_them_deliver(deps: ChannelDeps) -> None:
    """What ``notify.config.parse_channel`` accepts is what the adapters read."""
    with (
        SlackStandIn() as slack,
        DiscordStandIn() as discord,
        TeamsStandIn() as teams,
        PagerDutyStandIn() as pd,
    ):
        given: list[tuple[ChannelKind, dict[str, Any], dict[str, Any]]] = [
            ("slack", {}, {"url": slack.webhook_url}),
            ("slack_bot", {"channel": "C0123456789", "api_url": slack.api_url}, {"token": slack.token}),
            ("discord", {}, {"url": discord.webhook_url}),
            ("teams", {}, {"url": teams.webhook_url}),
            (
                "pagerduty",
                {"url": pd.enqueue_url, "severity_map": {"warning": "error"}},
                {"routing_key": pd.routing_key},
            ),
        ]
        for kind, settings, secrets in given:
            parsed_settings, parsed_secrets = parse_channel(kind, settings, secrets)
            result = build_channel(channel_config(kind, parsed_settings, parsed_secrets), deps).send(
                message()
            )
            assert result.outcome == "delivered", (kind, result)
        assert (len(slack.messages), len(discord.messages), len(teams.messages), len(pd.events)) == (
            2,
            1,
            1,
            1,
        )
