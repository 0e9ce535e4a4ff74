"""Errors of a query the caller must change (the answer is 422, never 503).

Why not ``StoreError``: the database did nothing wrong; a retry of the same query fails the same way.
"""

from __future__ import annotations

from infragent.errors import InfrAgentError


class QueryError(InfrAgentError):
    """A query that cannot be answered as asked; ``param`` names the parameter to change."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class LabelSyntaxError(QueryError):
    """A label selector that is neither ``k=v,k2=v2`` nor a JSON object of strings."""

    def __init__(self, message: str) -> None:
        super().__init__("labels", message)


class TooManySeriesError(QueryError):
    """More series match a query than it may return: narrow the labels.

    Distinct from ingest's series cap, which refuses to *create* series past a tenant's limit.
    """

    def __init__(self, matched: int, limit: int) -> None:
        super().__init__("labels", f"{matched} series match, over the limit of {limit}")
        self.matched = matched
        self.limit = limit
