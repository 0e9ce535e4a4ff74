"""The host agent: collects metrics, runs health checks, ships both to the server, runs commands."""
