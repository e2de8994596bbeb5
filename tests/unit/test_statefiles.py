"""Atomic JSON state files: readers racing the writer never see half a file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from publisher.statefiles import write_json_atomic


def payload(i: int) -> dict[str, object]:
    # Sizes vary so a torn write would show as truncated or mixed JSON.
    return {"i": i, "series": [{"t": t, "nav": str(t * 1000 + i)} for t in range(50 + (i % 7) * 200)]}


def test_readers_racing_the_writer_only_ever_see_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "nav_state.json"
    write_json_atomic(path, payload(0))
    done = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def reader() -> None:
        while not done.is_set():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                errors.append(repr(exc))
                return
            if data != payload(data["i"]):
                errors.append(f"file {data['i']} is not what was written")
                return
            seen.append(data["i"])

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(1, 150):
        write_json_atomic(path, payload(i))
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(seen) > 0 and json.loads(path.read_text())["i"] == 149
    assert [p.name for p in tmp_path.iterdir()] == ["nav_state.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "nav.json"
    write_json_atomic(path, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"not json": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["nav.json"]
