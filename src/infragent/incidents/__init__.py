"""Incidents: what alerts and events open, grouped and deduplicated; the pure core."""
