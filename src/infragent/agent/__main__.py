"""``python -m infragent.agent run``: the lean agent entry (see ``infragent.agent.main``).

``lean.prepare()`` runs before anything else is imported: it re-executes the process once with
``MALLOC_ARENA_MAX=1``, hides ``_hashlib`` and ``typing_extensions`` and defers a few stdlib
modules to their first use — each a measured cut of the agent's resident memory (see
``infragent.agent.lean``).
"""

import sys

from infragent.agent import lean

lean.prepare()

from infragent.agent.main import main  # noqa: E402 - lean.prepare() must run first

sys.exit(main())
