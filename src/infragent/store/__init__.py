"""Persistence: one interface over SQLite (default) and PostgreSQL; dialect differences live here only."""
