"""Copy the dashboard's browser libraries from node_modules into publisher/web/static/vendor/.

    python scripts/vendor.py [--check]

The dashboard loads Chart.js from the package itself (no CDN: the page must work offline and
a pip-installed navpub has no node_modules), so the UMD build and its licence are committed
under publisher/web/static/vendor/. The version is the one pinned in package.json
(devDependencies "chart.js"); after changing the pin run ``npm install`` and this script.
The UMD bundle includes @kurkle/color (Chart.js's colour dependency), so its licence is
copied too.

Files are copied byte for byte. ``--check`` compares without writing.

Exit status: 0 ok; 1 (with --check) a vendored file is missing or differs; 2 node_modules
lacks the package or holds another version than package.json pins.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
VENDOR_DIR = REPO_ROOT / "publisher" / "web" / "static" / "vendor"
PACKAGE = "chart.js"


@dataclass(frozen=True)
class VendoredFile:
    source: Path  # in node_modules
    target: Path  # committed copy


FILES = (
    VendoredFile(NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js", VENDOR_DIR / "chart.umd.min.js"),
    VendoredFile(NODE_MODULES / "chart.js" / "LICENSE.md", VENDOR_DIR / "chart.js.LICENSE.md"),
    VendoredFile(NODE_MODULES / "@kurkle" / "color" / "LICENSE.md", VENDOR_DIR / "kurkle-color.LICENSE.md"),
)


class VendorError(Exception):
    """node_modules cannot provide the pinned files."""


def pinned_version(root: Path = REPO_ROOT) -> str:
    """The exact chart.js version package.json pins."""
    package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    version = package.get("devDependencies", {}).get(PACKAGE)
    if not version:
        raise VendorError(f"package.json pins no {PACKAGE} in devDependencies")
    return str(version)


def installed_version(node_modules: Path = NODE_MODULES) -> str | None:
    """The chart.js version in node_modules, None when it is not installed."""
    manifest = node_modules / PACKAGE / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def check_installed() -> None:
    """Raises VendorError unless node_modules holds exactly the pinned version and every file."""
    want = pinned_version()
    have = installed_version()
    if have is None:
        raise VendorError(f"{PACKAGE} is not in {NODE_MODULES}; run `npm ci`")
    if have != want:
        raise VendorError(f"node_modules has {PACKAGE} {have}, package.json pins {want}; run `npm ci`")
    missing = [str(f.source) for f in FILES if not f.source.is_file()]
    if missing:
        raise VendorError("missing in node_modules: " + ", ".join(missing))


def stale_files() -> list[str]:
    """Each vendored file that is missing or differs from node_modules' copy, with why."""
    check_installed()
    return compare(FILES)


def compare(files: tuple[VendoredFile, ...]) -> list[str]:
    """Each target of `files` that is missing or differs from its source, with why."""
    problems = []
    for f in files:
        if not f.target.is_file():
            problems.append(f"{_rel(f.target)}: missing")
        elif f.target.read_bytes() != f.source.read_bytes():
            problems.append(f"{_rel(f.target)}: differs from {_rel(f.source)}")
    return problems


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def vendor() -> list[Path]:
    """Copies every file; returns the ones that changed."""
    check_installed()
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    changed = []
    for f in FILES:
        if f.target.is_file() and f.target.read_bytes() == f.source.read_bytes():
            continue
        shutil.copyfile(f.source, f.target)
        changed.append(f.target)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale_files()
            for p in problems:
                print(p, file=sys.stderr)
            if problems:
                print("run `python scripts/vendor.py`", file=sys.stderr)
                return 1
            print(f"vendored {PACKAGE} {pinned_version()} is fresh")
            return 0
        changed = vendor()
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {_rel(path)}")
    print(f"vendored {PACKAGE} {pinned_version()} ({len(changed)} file(s) changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
