"""Structured JSON logs."""

from __future__ import annotations

import json
import logging

from services.common.logging import JsonFormatter


def test_json_formatter_emits_one_object_with_extra_fields_and_exceptions():
    logger = logging.getLogger("hearby.test")
    try:
        raise ValueError("bad k")
    except ValueError:
        record = logger.makeRecord(
            "hearby.test",
            logging.WARNING,
            __file__,
            1,
            "rejected %s",
            ("k=0",),
            exc_info=__import__("sys").exc_info(),
            extra={"rpc": "/x/Y", "code": "INVALID_ARGUMENT"},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "rejected k=0"
    assert entry["level"] == "WARNING"
    assert entry["rpc"] == "/x/Y" and entry["code"] == "INVALID_ARGUMENT"
    assert "ValueError: bad k" in entry["exc"]
