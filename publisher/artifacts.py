"""Compiled contract artifacts (``abi/<Name>.json``): loading them and telling whether they are fresh.

The compile script (``scripts/compile.py``) and the package share the code here that decides
*what* the compiler sees: the project sources under ``contracts/`` plus the transitive closure
of their imports (OpenZeppelin files from ``node_modules``), each under a stable source unit
name. The ``sourceHash`` of that input set is stored in every artifact, so freshness can be
checked without a compiler: recompute the hash and compare (:func:`stale_artifacts`).

Source unit names are ``contracts/<path>`` for project files and the import path itself
(``@openzeppelin/contracts/<path>``) for library files. The compiler gets every file as
``content``; it never reads the disk, which is what solcjs's standard-JSON mode needs.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher._exceptions import ArtifactError

__all__ = [
    "ARTIFACTS_DIR",
    "CONTRACTS_DIR",
    "LIBRARY_PREFIXES",
    "PROJECT_PREFIX",
    "REPO_ROOT",
    "Artifact",
    "ArtifactError",
    "collect_sources",
    "declared_contracts",
    "import_paths",
    "load_artifact",
    "resolve_import",
    "source_hash",
    "stale_artifacts",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "abi"
CONTRACTS_DIR = REPO_ROOT / "contracts"

# Source unit name prefix of project files; <contracts dir>/<rel> is "contracts/<rel>" whatever
# directory the sources actually live in, so artifacts do not depend on where they were built.
PROJECT_PREFIX = "contracts/"
# Import prefix -> directory (relative to the repo root) it lives in. This is the remapping
# "@openzeppelin/=node_modules/@openzeppelin/", applied here rather than in the compiler
# settings: a compiler-side remapping would rename the units to node_modules/... and make
# the sources we pass by their import name unreachable.
LIBRARY_PREFIXES: dict[str, str] = {"@openzeppelin/": "node_modules/@openzeppelin/"}

_COMPILE_HINT = "run `python scripts/compile.py` to (re)generate it"


@dataclass(frozen=True)
class Artifact:
    """What deploying and calling one contract needs."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def load_artifact(name: str, artifacts_dir: Path | None = None) -> Artifact:
    """Reads ``abi/<name>.json``; raises :class:`ArtifactError` if it is missing or malformed."""
    path = (artifacts_dir or ARTIFACTS_DIR) / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"contract artifact {path} not found; {_COMPILE_HINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"contract artifact {path} is unreadable ({exc}); {_COMPILE_HINT}") from None
    problem = _artifact_problem(data, name)
    if problem:
        raise ArtifactError(f"contract artifact {path} is malformed: {problem}; {_COMPILE_HINT}")
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
    )


def _artifact_problem(data: object, name: str) -> str | None:
    """Why ``data`` is not a usable artifact of contract ``name``, or None if it is."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("contractName") != name:
        return f"contractName is {data.get('contractName')!r}, expected {name!r}"
    if not isinstance(data.get("abi"), list):
        return "'abi' is not a list"
    for key in ("bytecode", "deployedBytecode"):
        value = data.get(key)
        if not isinstance(value, str) or not value.startswith("0x"):
            return f"{key!r} is not a 0x-prefixed string"
    return None


# --- reading Solidity just enough to find imports and declarations -----------------------

_IMPORT_RE = re.compile(r"\bimport\b([^;]*);")
_STRING_RE = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"|'((?:[^'\\\n]|\\.)*)'")
_DECL_RE = re.compile(r"\b(?:contract|interface|library)\s+([A-Za-z_$][A-Za-z0-9_$]*)")


def _strip_comments(source: str, *, blank_strings: bool = False) -> str:
    """Source with comments (and optionally string literal contents) replaced by spaces.

    A hand-rolled scanner because a regex cannot tell ``"//"`` inside a string from a comment.
    """
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if ch == "/" and nxt == "/":
            end = source.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif ch == "/" and nxt == "*":
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", source[i:end]))  # keep newlines: line numbers stay right
            i = end
        elif ch in "\"'":
            j = i + 1
            while j < n and source[j] != ch and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            j = min(j + 1, n)
            literal = source[i:j]
            out.append(ch + " " * (len(literal) - 2) + ch if blank_strings and len(literal) >= 2 else literal)
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def import_paths(source: str) -> list[str]:
    """Import paths of a Solidity file, in order (every ``import`` form names exactly one path)."""
    paths: list[str] = []
    for statement in _IMPORT_RE.finditer(_strip_comments(source)):
        literal = _STRING_RE.search(statement.group(1))
        if literal:
            paths.append(literal.group(1) if literal.group(1) is not None else literal.group(2))
    return paths


def declared_names(source: str) -> list[str]:
    """Names of the contracts, interfaces and libraries a Solidity file declares."""
    return _DECL_RE.findall(_strip_comments(source, blank_strings=True))


def resolve_import(importer: str, path: str) -> str:
    """Source unit name an ``import path`` in unit ``importer`` refers to (solc's rules).

    Relative paths (``./``, ``../``) are relative to the importer's directory; anything else
    is already a unit name.
    """
    if path.startswith(("./", "../")):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(importer), path))
        if resolved.startswith("../"):
            raise ArtifactError(f"{importer}: import {path!r} points above the source tree")
        return resolved
    return path


def _unit_file(unit: str, root: Path, contracts_dir: Path) -> Path:
    """The file behind a source unit name, or an ArtifactError naming what cannot be found."""
    if unit.startswith(PROJECT_PREFIX):
        return contracts_dir / unit[len(PROJECT_PREFIX) :]
    for prefix, directory in LIBRARY_PREFIXES.items():
        if unit.startswith(prefix):
            return root / directory / unit[len(prefix) :]
    raise ArtifactError(
        f"cannot resolve import {unit!r}: only {PROJECT_PREFIX}..., relative paths and "
        f"{', '.join(LIBRARY_PREFIXES)}... are supported"
    )


def collect_sources(root: Path = REPO_ROOT, contracts_dir: Path | None = None) -> dict[str, str]:
    """Every ``*.sol`` under ``contracts_dir`` plus their transitive imports, by unit name, sorted.

    ``root`` is where ``node_modules`` lives; ``contracts_dir`` defaults to ``root/contracts``.
    Files are read as text with universal newlines, so a CRLF checkout hashes and compiles
    the same as an LF one.
    """
    contracts_dir = contracts_dir or root / "contracts"
    if not contracts_dir.is_dir():
        raise ArtifactError(f"contracts directory {contracts_dir} does not exist")
    pending = [PROJECT_PREFIX + p.relative_to(contracts_dir).as_posix() for p in contracts_dir.rglob("*.sol")]
    sources: dict[str, str] = {}
    importers: dict[str, str] = {}  # unit -> first unit importing it, for error messages
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = _unit_file(unit, root, contracts_dir)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            where = f" (imported by {importers[unit]})" if unit in importers else ""
            hint = " — has `npm install` been run?" if not unit.startswith(PROJECT_PREFIX) else ""
            raise ArtifactError(f"cannot read {unit}{where}: {exc.strerror or exc}{hint}") from None
        sources[unit] = text
        for imported in import_paths(text):
            target = resolve_import(unit, imported)
            importers.setdefault(target, unit)
            pending.append(target)
    return dict(sorted(sources.items()))


def source_hash(sources: Mapping[str, str]) -> str:
    """sha256 over every (unit name, content) pair in name order: any input change changes it.

    NUL separators keep ("ab", "c") and ("a", "bc") apart.
    """
    digest = hashlib.sha256()
    for unit in sorted(sources):
        digest.update(unit.encode("utf-8") + b"\0" + sources[unit].encode("utf-8") + b"\0")
    return digest.hexdigest()


def declared_contracts(sources: Mapping[str, str]) -> dict[str, str]:
    """Contract name -> project unit declaring it; library (node_modules) units are left out.

    One artifact file per name, so a name declared twice in the project is an error.
    """
    found: dict[str, str] = {}
    for unit, text in sources.items():
        if not unit.startswith(PROJECT_PREFIX):
            continue
        for name in declared_names(text):
            if name in found:
                raise ArtifactError(f"contract {name} is declared in both {found[name]} and {unit}")
            found[name] = unit
    return dict(sorted(found.items()))


def stale_artifacts(
    root: Path = REPO_ROOT,
    *,
    contracts_dir: Path | None = None,
    artifacts_dir: Path | None = None,
) -> list[str]:
    """Problems with the artifacts under ``root/abi``, one ``"<Name>: <why>"`` line each; [] if fresh.

    Needs no compiler: the sources are re-collected and hashed, and each artifact's
    ``sourceHash`` compared. Reports artifacts that are stale, malformed, missing (a declared
    contract without one) or extra (no such contract any more).
    """
    sources = collect_sources(root, contracts_dir)
    expected_hash = source_hash(sources)
    declared = declared_contracts(sources)
    artifacts_dir = artifacts_dir or root / "abi"
    existing = {p.stem: p for p in artifacts_dir.glob("*.json")} if artifacts_dir.is_dir() else {}

    problems: list[str] = []
    for name in sorted(declared.keys() | existing.keys()):
        if name not in existing:
            problems.append(f"{name}: missing (declared in {declared[name]})")
            continue
        if name not in declared:
            problems.append(f"{name}: extra (no contract {name} in the sources any more)")
            continue
        try:
            data = json.loads(existing[name].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{name}: unreadable ({exc})")
            continue
        problem = _artifact_problem(data, name)
        if problem:
            problems.append(f"{name}: malformed ({problem})")
        elif data.get("sourceName") != declared[name]:
            problems.append(f"{name}: stale (sourceName {data.get('sourceName')!r}, now in {declared[name]})")
        elif data.get("sourceHash") != expected_hash:
            problems.append(f"{name}: stale (sources changed since it was compiled)")
    return problems
