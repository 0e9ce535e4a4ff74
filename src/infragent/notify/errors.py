"""The notification errors (drawn in ``errors.py``); ``server/errors.py`` answers each with its
``status`` and a JSON body (``problems`` for a 422 names every field at fault)."""

from __future__ import annotations

from infragent.errors import InfrAgentError


class NotifyError(InfrAgentError):
    """A notification request refused; ``status`` is its HTTP answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotifyConfigError(NotifyError):
    """A channel, route tree, silence, inhibit rule or template is invalid.

    ``problems`` lists every fault at once as ``(field path, message)``, the path in the request
    body's terms (``routes[1].group_wait``, ``settings.url``, ``matchers[0].value``).
    """

    status = 422

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__(
            "; ".join(f"{path}: {message}" if path else message for path, message in self.problems)
        )


class NotifyNotFoundError(NotifyError):
    """No such channel, route, silence, rule or delivery for this tenant (another tenant's too)."""

    status = 404

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")
        self.what = what
        self.ident = ident


class NotifyConflictError(NotifyError):
    """A channel name is taken, a channel is still used by a route, a delivery is not dead."""

    status = 409
