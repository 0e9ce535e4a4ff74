"""InfrAgent: observe, detect, decide, act, verify, record."""

__version__ = "0.1.0"
