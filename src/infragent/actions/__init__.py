"""Delivery of signed commands to agents and SDK instances."""
