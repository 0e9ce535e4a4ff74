"""Metric queries, pure: label selectors, planning a range read, and the one aggregate kernel.

Nothing here touches a database or HTTP; the store reads partial aggregates (``aggregate.
Partials``), and the route and (next) rule evaluation fold them with ``aggregate``.
"""
