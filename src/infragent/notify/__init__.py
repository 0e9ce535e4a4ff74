"""Notifications: route, group, repeat, resolve, deliver durably (``docs/notifications.md``).

Pure cores: ``model``, ``config``, ``route``, ``mute``, ``grouping``, ``render``. Orchestrators:
``pipeline`` (changes → groups → deliveries) and ``deliver`` (the delivery worker). Adapters:
``channels/`` (one ``send(message) -> DeliveryResult`` per kind).
"""
