"""Structure checks that ruff, mypy and import-linter do not make: no import cycle, no oversized module.

Why a cycle check of our own on top of import-linter: its contracts say which layer may import which,
but two modules of one layer can still import each other, and a cycle hidden in a function-local
import (``def f(): from x import y``) works until the day the import order changes. grimp, the graph
builder under import-linter, records every import statement, function-local and ``TYPE_CHECKING``
ones included, so a cycle found here is one that exists somewhere in the code.

Run: ``python scripts/check_structure.py`` (``make check`` does); exit status 1 on any finding.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

PACKAGE = "infragent"
MAX_LINES = 500
ROOT = Path(__file__).resolve().parent.parent


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm over module → directly imported module; components of 2+ modules are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative, so a deep graph cannot hit the recursion limit
        nonlocal counter
        work: list[tuple[str, list[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, sorted(graph.find_modules_directly_imported_by(start))))
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def oversized(src: Path) -> list[tuple[Path, int]]:
    out = []
    for path in sorted(src.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            out.append((path.relative_to(ROOT), lines))
    return out


def main() -> int:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    cycles = strongly_connected(graph)
    big = oversized(ROOT / "src" / PACKAGE)
    for component in cycles:
        print(f"import cycle between {len(component)} modules: {', '.join(component)}")
        for a in component:
            for b in component:
                if graph.direct_import_exists(importer=a, imported=b):
                    lines = graph.get_import_details(importer=a, imported=b)
                    where = ", ".join(f"line {d['line_number']}" for d in lines)
                    print(f"    {a} -> {b} ({where})")
    for path, lines in big:
        print(f"{path}: {lines} lines (more than {MAX_LINES}); split it")
    modules = len(graph.modules)
    imports = sum(len(graph.find_modules_directly_imported_by(m)) for m in graph.modules)
    print(
        f"structure: {modules} modules, {imports} internal imports (function-local included), "
        f"{len(cycles)} import cycles, {len(big)} modules over {MAX_LINES} lines"
    )
    return 1 if cycles or big else 0


if __name__ == "__main__":
    sys.exit(main())
