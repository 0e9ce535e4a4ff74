"""The HTTP server: ingest, registration, REST API and health."""
