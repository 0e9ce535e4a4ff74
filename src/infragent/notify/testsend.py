"""A test send: one ``test`` message to one channel, now, once, so a person sees that the channel
works (and what its messages look like) before an incident depends on it.

Why apart from the delivery worker: a test is answered to the person who asked, at once, with what
the receiver said (``DeliveryResult``), and it is not retried, not recorded as a delivery and not
routed: a channel that refuses is the answer, not a dead letter. It still goes through the same
adapter (``notify.channels.build_channel``) and the same guarded HTTP client (``ChannelDeps``) as a
real delivery, so a test that passes means the real thing reaches the receiver too.

The message is the renderer's sample (two incidents, every field set, ``notify/render.py``) with
the channel's tenant and name, links on ``public_url``, and optionally a template to try out. An
``inapp`` channel has no adapter: the API writes the test in the caller's own inbox instead.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping

from infragent.notify.channels import ChannelDeps, build_channel
from infragent.notify.model import ChannelConfig, DeliveryResult, Message
from infragent.notify.render import preview, render

logger = logging.getLogger(__name__)


def test_message(
    channel: ChannelConfig, *, now: float, public_url: str, template: Mapping[str, str] | None = None
) -> Message:
    """The rendered ``test`` message ``channel`` would get (``--preview`` prints it)."""
    sample = preview(channel.kind, template or {}, now, "test")
    base = public_url.rstrip("/")
    incidents = tuple(
        dataclasses.replace(i, url=f"{base}/incidents/{i.id}" if base else "") for i in sample.incidents
    )
    message = dataclasses.replace(
        sample,
        id=str(uuid.uuid4()),
        client_id=channel.client_id,
        incidents=incidents,
        detail={**sample.detail, "channel": channel.name},
        title="",
        text="",
        html="",
    )
    return render(message, channel.kind, now)


def test_send(
    channel: ChannelConfig,
    deps: ChannelDeps,
    *,
    now: float,
    public_url: str,
    template: Mapping[str, str] | None = None,
) -> DeliveryResult:
    """Send the test message once and say what became of it; never raises for the receiver's sake
    (a refusal, a timeout, a bad address are outcomes). ``inapp`` is the caller's to handle."""
    if channel.kind == "inapp":
        return DeliveryResult("failed", error="in-app channels have no receiver to send to: see the inbox")
    message = test_message(channel, now=now, public_url=public_url, template=template)
    try:
        return build_channel(channel, deps).send(message)
    except Exception as exc:  # noqa: BLE001 - the adapter's bug must still answer the person testing
        # the type only: an exception's text or traceback may hold the channel's URL (a secret)
        logger.error("test send to channel %s (%s) failed: %s", channel.id, channel.kind, type(exc).__name__)
        return DeliveryResult("failed", error=f"the {channel.kind} adapter failed: {type(exc).__name__}")


# Named ``test_*`` for what they do; a test module importing them by name must not have pytest
# collect them as tests.
test_message.__test__ = False  # type: ignore[attr-defined]
test_send.__test__ = False  # type: ignore[attr-defined]
