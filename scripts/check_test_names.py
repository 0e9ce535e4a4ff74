"""Fail when two test modules share a file name: pytest imports test files by their base name
(``rootdir``-relative, no ``__init__.py``), so the second one fails to collect with "import file
mismatch" — on a clean checkout only, since a warm ``__pycache__`` can hide it."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    seen: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen[path.name].append(path.relative_to(ROOT))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    for name, paths in clashes.items():
        print(f"test module name used twice: {name}: {', '.join(map(str, paths))}", file=sys.stderr)
    print(f"test names: {sum(len(p) for p in seen.values())} test modules, {len(clashes)} names used twice")
    return 1 if clashes else 0


if __name__ == "__main__":
    sys.exit(main())
