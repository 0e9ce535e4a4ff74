"""The ``infragent`` command line."""
