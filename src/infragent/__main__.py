"""``python -m infragent``: the same as the ``infragent`` command."""

from infragent.cli.main import main

main()
