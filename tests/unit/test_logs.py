"""Structured logs: one JSON object per line, with fund and tx when a record concerns them."""

from __future__ import annotations

import json
import logging

from publisher.logs import JsonFormatter


def test_json_lines_carry_the_context_fields() -> None:
    args = (2, "published")
    record = logging.LogRecord("navpub.keeper", logging.INFO, __file__, 1, "fund %s: %s", args, None)
    record.fund = 2
    record.tx = "0xabc"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "fund 2: published" and data["fund"] == 2 and data["tx"] == "0xabc"
    assert data["level"] == "info" and data["logger"] == "navpub.keeper" and data["ts"].endswith("+00:00")
    assert "round" not in data  # absent context is left out, not null
