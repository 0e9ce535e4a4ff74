"""What a page needs before it runs: a signed-in user allowed to do the page's operation.

Why pages have their own dependency rather than the API's ``require``: a browser that is not signed
in should land on the sign-in page, not read a JSON 401; htmx requests get ``HX-Redirect`` so the
whole page moves. The permission is the API's: ``page("incidents.write")`` asks the same table
(``auth/scopes.py``) as ``require("incidents.write")``, so a viewer's hidden button and a viewer's
API call are refused by the same row. The operation is recorded on the dependency
(``OPERATION_ATTR``) so the authorization-matrix test can read every page's permission from the
route table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from fastapi import Request

from infragent.auth import scopes
from infragent.errors import InfrAgentError
from infragent.server.auth import Principal, csrf_refused, signed_in

OPERATION_ATTR: Final = "__infragent_operation__"


class LoginRequiredError(InfrAgentError):
    """No live session: the app's handler redirects to ``/login?next=<this page>``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PageForbiddenError(InfrAgentError):
    """Signed in, but the role lacks the page's operation (or the CSRF token is missing)."""

    def __init__(self, who: Principal, operation: str, reason: str = "") -> None:
        super().__init__(operation)
        self.who = who
        self.operation = operation
        self.reason = reason


def page(operation: str) -> Callable[[Request], Awaitable[Principal]]:
    """The dependency of a page (or a page's form handler) doing ``operation``."""
    scopes.required(operation)  # an unknown operation fails at import, not at the first request

    async def signed_in_page(request: Request) -> Principal:
        who = await signed_in(request)
        if who is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequiredError(quote(target, safe="/?=&"))
        if csrf_refused(request, who):
            raise PageForbiddenError(who, operation, "missing or wrong CSRF token")
        if not who.can(operation):
            raise PageForbiddenError(who, operation)
        return who

    setattr(signed_in_page, OPERATION_ATTR, operation)
    signed_in_page.__name__ = f"page_{operation.replace('.', '_')}"
    return signed_in_page
