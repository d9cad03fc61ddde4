"""Structured logs: one JSON object per line with the call, the user and the script version."""

from __future__ import annotations

import json
import logging

from callscript.logs import JsonFormatter


def test_json_log_lines_carry_call_id_user_and_script_version() -> None:
    """A record logged with extra fields becomes a JSON object holding them as fields."""
    record = logging.LogRecord(
        "callscript.scripts", logging.INFO, __file__, 1, "[%s] %s", ("alice", "hi"), None
    )
    record.call_id = "a84b4c76e66710"
    record.user = "sip:alice@example.com"
    record.script_version = "0123456789ab"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "[alice] hi"
    assert (entry["call_id"], entry["user"], entry["script_version"]) == (
        "a84b4c76e66710",
        "sip:alice@example.com",
        "0123456789ab",
    )
    assert entry["level"] == "INFO" and entry["logger"] == "callscript.scripts"


def test_json_log_lines_without_call_fields_have_none_of_them() -> None:
    """Lines that are about no call (start-up) carry no call fields."""
    record = logging.LogRecord(
        "callscript.server", logging.INFO, __file__, 1, "listening", (), None
    )
    entry = json.loads(JsonFormatter().format(record))
    assert "call_id" not in entry and entry["message"] == "listening"
