"""``infragent demo``: the whole loop on this machine, from a crash to a healed app."""
