"""The settings the remote-control tests serve the app with (``support.web.serve_site``), and why.

Tenants' webhooks on loopback are allowed (the push agent is the SDK receiver on 127.0.0.1), a push
is tried once (a refused one fails the command at once instead of after retries) and commands live
300 s (none expires while a test polls it).
"""

from __future__ import annotations

from infragent.config import Settings


def remote_settings() -> Settings:
    return Settings(webhook_allowed_networks=("127.0.0.0/8",), webhook_retries=0, command_ttl_s=300)
