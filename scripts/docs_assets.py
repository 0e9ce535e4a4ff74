"""The Swagger UI and ReDoc files that ``/docs`` and ``/redoc`` serve from the server itself.

Why vendored: FastAPI's pages load them from a CDN by default, so the API docs of a server on a
host with no internet (a common place for a self-hosted monitor) were blank. They are taken from the
npm packages pinned in ``scripts/docs_assets.lock.json`` (name, version, the registry's integrity
hash, and the SHA-256 of every file taken), and committed under ``src/infragent/server/static/``,
package data of the wheel. Only what the pages load is taken, plus each package's licence files.

    python scripts/docs_assets.py            # check the committed files against the lock (no network)
    python scripts/docs_assets.py --update   # npm pack each pinned package, check its integrity, extract

To move to a newer version: edit ``version`` in the lock, run ``--update`` (it refuses a tarball
whose integrity differs from the lock unless ``--accept-new-integrity`` is given, which records it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "scripts" / "docs_assets.lock.json"
STATIC = ROOT / "src" / "infragent" / "server" / "static"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(lock: dict[str, Any]) -> list[str]:
    """Every file the lock names is committed with the recorded SHA-256; the problems found."""
    problems = []
    for package in lock["packages"]:
        for entry in package["files"].values():
            path = STATIC / entry["to"]
            if not path.is_file():
                problems.append(f"{path.relative_to(ROOT)}: missing")
            elif _sha256(path.read_bytes()) != entry["sha256"]:
                problems.append(
                    f"{path.relative_to(ROOT)}: differs from {package['name']}@{package['version']}"
                )
    return problems


def _pack(name: str, version: str, into: Path) -> tuple[Path, str]:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to fetch the packages (the check alone needs no network and no npm)")
    out = subprocess.run(  # noqa: S603 - a fixed command; name and version come from our lock
        [npm, "pack", f"{name}@{version}", "--json", "--pack-destination", str(into)],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(out.stdout)[0]
    tarball = into / info["filename"]
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    return tarball, f"sha512-{digest}"


def update(lock: dict[str, Any], accept_new_integrity: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for package in lock["packages"]:
            tarball, integrity = _pack(package["name"], package["version"], Path(tmp))
            if integrity != package.get("integrity"):
                if not accept_new_integrity:
                    sys.exit(
                        f"{package['name']}@{package['version']}: integrity {integrity} is not the lock's"
                    )
                package["integrity"] = integrity
            with tarfile.open(tarball) as tar:
                for member, entry in package["files"].items():
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        sys.exit(f"{package['name']}: {member} is not a file in the tarball")
                    data = extracted.read()
                    target = STATIC / entry["to"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    entry["sha256"] = _sha256(data)
    LOCK.write_text(json.dumps(lock, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--update", action="store_true", help="fetch the pinned packages with npm and extract"
    )
    parser.add_argument("--accept-new-integrity", action="store_true", help="record a changed tarball hash")
    args = parser.parse_args()
    lock = json.loads(LOCK.read_text())
    if args.update:
        update(lock, args.accept_new_integrity)
    problems = check(lock)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"docs assets: {sum(len(p['files']) for p in lock['packages'])} files match {LOCK.name}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
