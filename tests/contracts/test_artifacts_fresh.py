"""The committed artifacts in abi/ are what the current Solidity sources compile to.

The cheap test hashes the sources (no compiler); the `compiler` one recompiles with solcjs and
compares byte for byte. The rest show the freshness check can actually fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.artifacts import (
    ARTIFACTS_DIR,
    REPO_ROOT,
    ArtifactError,
    collect_sources,
    declared_contracts,
    import_paths,
    load_artifact,
    resolve_import,
    source_hash,
    stale_artifacts,
)

SOLCJS = REPO_ROOT / "node_modules" / ".bin" / "solcjs"
OPENZEPPELIN = REPO_ROOT / "node_modules" / "@openzeppelin" / "contracts"


def require(path: Path, what: str) -> None:
    """Skips when a local tool is missing, but fails in CI, where it must be installed."""
    if path.exists():
        return
    message = f"{what} not found at {path}; run `npm install`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_committed_artifacts_are_fresh():
    require(OPENZEPPELIN, "OpenZeppelin contracts")
    problems = stale_artifacts(REPO_ROOT)
    assert not problems, "abi/ does not match contracts/; run `python scripts/compile.py`:\n" + "\n".join(
        problems
    )


@pytest.mark.compiler
def test_recompiling_with_solcjs_reproduces_abi_exactly():
    require(SOLCJS, "solcjs")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "compile.py"), "--check", "--backend", "solcjs"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the check can fail ----------------------------------------------------------------------


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Path:
    """A copy of contracts/ with artifacts that are fresh for it, and the real node_modules.

    The artifacts are synthesized (right names and sourceHash, no bytecode) so these tests do
    not depend on the committed abi/ being fresh: that is the first test's job.
    """
    require(OPENZEPPELIN, "OpenZeppelin contracts")
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "contracts", root / "contracts")
    (root / "node_modules").symlink_to(REPO_ROOT / "node_modules", target_is_directory=True)
    sources = collect_sources(root)
    digest = source_hash(sources)
    (root / "abi").mkdir()
    for name, unit in declared_contracts(sources).items():
        artifact = {
            "contractName": name,
            "sourceName": unit,
            "abi": [],
            "bytecode": "0x",
            "deployedBytecode": "0x",
            "sourceHash": digest,
        }
        (root / "abi" / f"{name}.json").write_text(json.dumps(artifact))
    assert stale_artifacts(root) == []
    return root


def test_modified_source_makes_artifacts_stale(fresh_copy: Path):
    vault = fresh_copy / "contracts" / "FundVault.sol"
    vault.write_text(vault.read_text() + "\n// changed\n")
    problems = stale_artifacts(fresh_copy)
    assert "FundVault: stale (sources changed since it was compiled)" in problems
    # one hash covers the whole input, so every artifact is stale
    assert len(problems) == len(list((fresh_copy / "abi").glob("*.json")))


def test_missing_and_extra_artifacts_are_reported(fresh_copy: Path):
    (fresh_copy / "abi" / "FundVault.json").unlink()
    (fresh_copy / "abi" / "Ghost.json").write_text("{}")
    assert stale_artifacts(fresh_copy) == [
        "FundVault: missing (declared in contracts/FundVault.sol)",
        "Ghost: extra (no contract Ghost in the sources any more)",
    ]


def test_library_sources_are_part_of_the_hash():
    sources = {
        "contracts/A.sol": "import '@openzeppelin/contracts/X.sol';",
        "@openzeppelin/contracts/X.sol": "a",
    }
    changed = {**sources, "@openzeppelin/contracts/X.sol": "b"}
    assert source_hash(sources) != source_hash(changed)
    # unit boundaries matter: moving text between name and content changes the hash
    assert source_hash({"ab": "c"}) != source_hash({"a": "bc"})


# --- import resolution and loading ---------------------------------------------------------


def test_import_forms_are_all_found_and_comments_ignored():
    source = """
    import "./A.sol";
    import "./B.sol" as B;
    import * as C from '../C.sol';
    import {D,
            E as F} from "@openzeppelin/contracts/D.sol";
    // import "./commented.sol";
    /* import "./block.sol"; */
    string constant S = "import \\"./string.sol\\";";
    """
    assert import_paths(source) == ["./A.sol", "./B.sol", "../C.sol", "@openzeppelin/contracts/D.sol"]


def test_relative_imports_resolve_against_the_importer():
    assert resolve_import("contracts/mocks/M.sol", "../interfaces/I.sol") == "contracts/interfaces/I.sol"
    assert (
        resolve_import("@openzeppelin/contracts/access/AccessControl.sol", "../utils/Context.sol")
        == "@openzeppelin/contracts/utils/Context.sol"
    )
    assert (
        resolve_import("contracts/A.sol", "@openzeppelin/contracts/X.sol") == "@openzeppelin/contracts/X.sol"
    )


def test_load_artifact_errors_name_the_file_and_the_fix(tmp_path: Path):
    with pytest.raises(ArtifactError, match=r"Nope\.json not found.*scripts/compile\.py"):
        load_artifact("Nope", tmp_path)
    (tmp_path / "Bad.json").write_text('{"contractName": "Bad", "abi": {}}')
    with pytest.raises(
        ArtifactError, match=r"Bad\.json is malformed: 'abi' is not a list.*scripts/compile\.py"
    ):
        load_artifact("Bad", tmp_path)


def test_artifacts_carry_natspec_where_integrators_look():
    """The events an indexer filters, the feed's semantics and the batch word's layout are in
    the artifacts' userdoc / devdoc, not only in the Solidity sources."""

    def doc(name: str) -> dict:
        # NatSpec keeps the source's line breaks as runs of spaces: fold them.
        return json.loads(re.sub(r" {2,}", " ", (ARTIFACTS_DIR / f"{name}.json").read_text(encoding="utf-8")))

    vault = doc("FundVault")
    events = vault["userdoc"]["events"]
    assert "seed's event" in events["NAVUpdated(uint256,uint256,uint256,uint256)"]["notice"]
    assert "per share" in events["HighWaterMarkUpdated(uint256,uint256)"]["notice"]
    assert "share version" in events["NAVSkipped(uint256,uint256,uint256)"]["notice"]
    layout = vault["userdoc"]["methods"]["packNavUpdate(uint256,uint256,uint48,uint16,uint256)"]["notice"]
    assert all(bits in layout for bits in ("0-127", "128-143", "144-191", "192-223", "224-255"))
    hub = doc("AnalyticsHub")
    record = hub["userdoc"]["events"]["NAVRecorded(uint256,uint256,uint256,uint256,uint256,uint256)"]
    assert "round" in record["notice"] and "estimated" in record["notice"]
    feed = doc("FundNavFeed")
    notice = feed["userdoc"]["notice"]
    assert "8 by default" in notice and "frozen" in notice and "zeros" in notice
    for artifact in sorted(ARTIFACTS_DIR.glob("*.json")):
        data = json.loads(artifact.read_text(encoding="utf-8"))
        assert "devdoc" in data and "userdoc" in data, artifact.name
