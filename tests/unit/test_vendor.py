"""The dashboard's vendored Chart.js is exactly the npm package package.json pins, and the page
loads nothing from outside the app (it must work offline, without node)."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from publisher.localchain import REPO_ROOT

WEB = REPO_ROOT / "publisher" / "web"


def load_vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("navpub_vendor_script", REPO_ROOT / "scripts" / "vendor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


vendor = load_vendor_script()


def test_vendored_copy_equals_node_modules():
    """Skips when node_modules lacks chart.js, but fails in CI, where `npm ci` installed it."""
    try:
        vendor.check_installed()
    except vendor.VendorError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    problems = vendor.stale_files()
    assert not problems, "run `python scripts/vendor.py`:\n" + "\n".join(problems)


def test_vendored_bundle_is_the_pinned_version():
    # Needs no node_modules: the bundle's banner names its version.
    head = (vendor.VENDOR_DIR / "chart.umd.min.js").read_text(encoding="utf-8")[:300]
    match = re.search(r"Chart\.js v(\d+\.\d+\.\d+)", head)
    assert match, head
    assert match.group(1) == vendor.pinned_version()
    for f in vendor.FILES:
        assert f.target.is_file(), f.target


def test_compare_names_missing_and_changed_copies(tmp_path: Path):
    src = tmp_path / "src.js"
    src.write_text("chart")
    same, changed, missing = (tmp_path / n for n in ("same.js", "changed.js", "missing.js"))
    same.write_text("chart")
    changed.write_text("chart // edited")
    files = tuple(vendor.VendoredFile(src, t) for t in (same, changed, missing))
    problems = vendor.compare(files)
    assert problems == [f"{changed}: differs from {src}", f"{missing}: missing"]


def test_page_loads_nothing_from_outside():
    """No CDN, web font or remote script: every src/href of the page is a local path."""
    for page in (WEB / "index.html", WEB / "static" / "style.css", WEB / "static" / "app.js"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), page
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text), page
        assert not re.search(r"@import", text), page
    html = (WEB / "index.html").read_text(encoding="utf-8")
    assert 'src="static/vendor/chart.umd.min.js"' in html
