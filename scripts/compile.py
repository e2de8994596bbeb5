"""Compile contracts/**/*.sol into abi/<ContractName>.json artifacts (or check they are fresh).

    python scripts/compile.py [--check] [--backend {auto,solcx,solcjs}]
                              [--contracts-dir DIR] [--out-dir DIR]

The compiler is the version pinned in package.json (devDependencies "solc"). ``auto`` uses a
native solc of exactly that version through py-solc-x when one is installed, else the npm
package's solcjs (same compiler, WebAssembly). Both are driven through the standard-JSON
interface with every source passed as content, so they produce byte-identical artifacts.

Artifacts are deterministic (sorted keys, no timestamps, no absolute paths): recompiling
unchanged sources rewrites nothing, and ``--check`` compares byte for byte without writing.

Exit status: 0 ok; 1 compiler errors or (with --check) missing/stale/extra artifacts;
2 no usable compiler or unreadable sources.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a plain script: make `publisher` importable

from publisher.artifacts import (  # noqa: E402
    PROJECT_PREFIX,
    ArtifactError,
    collect_sources,
    source_hash,
)

SOLCJS = REPO_ROOT / "node_modules" / ".bin" / "solcjs"

# Optimizer runs tuned for call cost (the vault and router are called far more than deployed);
# cancun so both eth-tester (py-evm) and anvil execute the bytecode.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 10000},
    "viaIR": False,
    "evmVersion": "cancun",
}
OUTPUTS = ["abi", "devdoc", "userdoc", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]


class CompileError(Exception):
    """No usable compiler, or it failed outright; the message says what to do."""


def pinned_version(root: Path = REPO_ROOT) -> str:
    """The solc version package.json pins, e.g. "0.8.30" (a leading ^, ~ or = is ignored)."""
    try:
        spec = json.loads((root / "package.json").read_text(encoding="utf-8"))["devDependencies"]["solc"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CompileError(f"cannot read the pinned solc version from package.json: {exc!r}") from None
    return str(spec).lstrip("^~=v ")


def standard_input(sources: dict[str, str]) -> dict[str, Any]:
    """The standard-JSON input; outputs are selected for project files only (less codegen)."""
    selection = {unit: {"*": OUTPUTS} for unit in sources if unit.startswith(PROJECT_PREFIX)}
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": {**SETTINGS, "outputSelection": selection},
    }


# --- backends ------------------------------------------------------------------------------


def native_solc(version: str) -> dict[str, Any] | None:
    """py-solc-x keyword arguments selecting a native solc of exactly ``version``, or None."""
    try:
        import solcx
        from packaging.version import Version
    except ImportError:
        return None
    wanted = Version(version)
    try:
        if wanted in solcx.get_installed_solc_versions():
            return {"solc_version": wanted}
    except Exception:  # py-solc-x raises assorted errors when its install dir is absent
        pass
    on_path = shutil.which("solc")
    if on_path:
        try:
            if solcx.wrapper.get_solc_version(on_path, with_commit_hash=False) == wanted:
                return {"solc_binary": on_path}
        except Exception:  # not a solc, or it does not run here
            pass
    return None


def compile_solcx(input_json: dict[str, Any], solc: dict[str, Any]) -> dict[str, Any]:
    """Compiles through py-solc-x with a native solc."""
    import solcx
    from solcx.exceptions import SolcError

    try:
        return solcx.compile_standard(input_json, **solc)
    except SolcError as exc:
        # py-solc-x raises on severity "error"; re-parse its stdout so errors and warnings are
        # reported the same way as solcjs's
        try:
            return json.loads(exc.stdout_data)
        except (TypeError, ValueError):
            raise CompileError(f"solc failed: {exc}") from None


def compile_solcjs(input_json: dict[str, Any]) -> dict[str, Any]:
    """Compiles with node_modules/.bin/solcjs --standard-json (input on stdin)."""
    if not SOLCJS.exists():
        raise CompileError(f"{SOLCJS} not found; run `npm install`")
    # stdin and stdout are files, not pipes: solcjs does console.log(output) then process.exit(),
    # and node drops whatever a full pipe has not taken yet (output cut at ~64-128 KiB).
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout:
        stdin.write(json.dumps(input_json).encode("utf-8"))
        stdin.seek(0)
        proc = subprocess.run(
            [str(SOLCJS), "--standard-json"],
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            check=False,
            cwd=REPO_ROOT,
        )
        stdout.seek(0)
        text = stdout.read().decode("utf-8")
    stderr = proc.stderr.decode("utf-8", "replace")
    # solcjs prints ">>> Cannot retry compilation with SMT ..." before the JSON: skip to the
    # first line that opens it.
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
    if proc.returncode != 0 or start is None:
        raise CompileError(
            f"solcjs exited with {proc.returncode} without JSON output:\n{text[-2000:]}{stderr[-2000:]}"
        )
    try:
        return json.loads("".join(lines[start:]))
    except json.JSONDecodeError as exc:
        raise CompileError(f"solcjs output is not JSON ({exc}):\n{text[-2000:]}") from None


def run_compiler(input_json: dict[str, Any], backend: str, version: str) -> tuple[str, dict[str, Any]]:
    """(backend used, standard-JSON output)."""
    if backend in ("auto", "solcx"):
        solc = native_solc(version)
        if solc is not None:
            return "solcx", compile_solcx(input_json, solc)
        if backend == "solcx":
            raise CompileError(
                f"no native solc {version} available to py-solc-x (installed: none matching, "
                "and no `solc` of that version on PATH); use --backend solcjs"
            )
    return "solcjs", compile_solcjs(input_json)


# --- output --------------------------------------------------------------------------------


def report_diagnostics(output: dict[str, Any]) -> bool:
    """Prints compiler errors and warnings to stderr; True if any is fatal."""
    fatal = False
    for diag in output.get("errors", []):
        severity = diag.get("severity", "error")
        fatal |= severity == "error"
        text = diag.get("formattedMessage") or f"{diag.get('type', 'Error')}: {diag.get('message', diag)}"
        print(text.rstrip() + "\n", file=sys.stderr)
    return fatal


def compiler_version(output: dict[str, Any], pinned: str) -> str:
    """Long version ("0.8.30+commit.73712a01") from the metadata; it has no platform suffix,
    so artifacts are identical whichever backend built them."""
    for contracts in output.get("contracts", {}).values():
        for contract in contracts.values():
            version = json.loads(contract["metadata"])["compiler"]["version"]
            if not version.startswith(pinned + "+"):
                raise CompileError(f"compiler is {version}, package.json pins {pinned}; run `npm install`")
            return str(version)
    return pinned


def build_artifacts(output: dict[str, Any], sources: dict[str, str], pinned: str) -> dict[str, str]:
    """File name -> exact file text of every artifact, for each contract in a project file."""
    version = compiler_version(output, pinned)
    digest = source_hash(sources)
    files: dict[str, str] = {}
    owners: dict[str, str] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        if not unit.startswith(PROJECT_PREFIX):
            continue
        for name, contract in sorted(contracts.items()):
            if name in owners:
                raise CompileError(f"contract {name} is declared in both {owners[name]} and {unit}")
            owners[name] = unit
            artifact = {
                "contractName": name,
                "sourceName": unit,
                "abi": contract["abi"],
                # NatSpec, where integrators look: what each call, event, error and packed
                # encoding means (userdoc: @notice; devdoc: @dev, @param, @return).
                "devdoc": contract["devdoc"],
                "userdoc": contract["userdoc"],
                "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                "compiler": {"name": "solc", "version": version, "settings": SETTINGS},
                "sourceHash": digest,
            }
            files[f"{name}.json"] = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
    return files


def check(files: dict[str, str], out_dir: Path) -> list[str]:
    """Every artifact in ``out_dir`` that differs from ``files``: missing, stale or extra."""
    existing = {p.name for p in out_dir.glob("*.json")} if out_dir.is_dir() else set()
    problems = []
    for name in sorted(files.keys() | existing):
        path = out_dir / name
        if name not in existing:
            problems.append(f"missing: {path}")
        elif name not in files:
            problems.append(f"extra:   {path} (no such contract in the sources)")
        elif path.read_text(encoding="utf-8") != files[name]:
            problems.append(f"stale:   {path}")
    return problems


def write(files: dict[str, str], out_dir: Path) -> None:
    """Writes changed artifacts and removes those of contracts that no longer exist.

    abi/*.json is owned by this script: any JSON file there that it did not produce goes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(set(p.name for p in out_dir.glob("*.json")) - files.keys()):
        (out_dir / stale).unlink()
        print(f"removed {out_dir / stale}")
    for name, text in files.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            # newline="\n": the same bytes on every platform
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote   {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the out dir; write nothing")
    parser.add_argument("--backend", choices=["auto", "solcx", "solcjs"], default="auto")
    parser.add_argument("--contracts-dir", type=Path, default=REPO_ROOT / "contracts")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "abi")
    args = parser.parse_args(argv)

    try:
        pinned = pinned_version()
        sources = collect_sources(REPO_ROOT, args.contracts_dir.resolve())
        if not any(unit.startswith(PROJECT_PREFIX) for unit in sources):
            raise CompileError(f"no .sol files under {args.contracts_dir}")
        backend, output = run_compiler(standard_input(sources), args.backend, pinned)
        if report_diagnostics(output):
            print(f"compilation failed ({backend} {pinned})", file=sys.stderr)
            return 1
        files = build_artifacts(output, sources, pinned)
    except (ArtifactError, CompileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        problems = check(files, args.out_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("artifacts are out of date; run `python scripts/compile.py`", file=sys.stderr)
            return 1
        print(f"{len(files)} artifacts fresh ({backend} {pinned})")
        return 0

    write(files, args.out_dir)
    print(f"{len(files)} artifacts in {args.out_dir} ({backend} {pinned})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
