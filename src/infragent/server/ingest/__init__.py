"""Decoders that turn foreign metric wire formats into our ``MetricBatch``es: ``otlp`` (OTLP/HTTP).

They are pure (bytes and a clock reading in, values out) so that the routes in ``server/api`` stay
thin and the mapping rules can be tested table-driven, without a server or a database.
"""
