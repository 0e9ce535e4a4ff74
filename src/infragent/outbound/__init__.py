"""Outbound connections to URLs a tenant controls (webhooks today, notification channels later).

``policy`` is pure (which addresses may be reached, and why not); ``transport`` is the httpx
transport that resolves a name once, judges every address and connects to the one it checked.
"""
