"""`callscript audit` reads the same audit log the server writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callscript.cli import main
from callscript.store.audit import AuditEntry
from callscript.store.sqlite import SqliteStore


def _seed(db: Path) -> None:
    store = SqliteStore(str(db))
    try:
        store.audit.record(
            AuditEntry(
                at=1.0,
                owner="sip:bob@example.com",
                script="example.com/bob.py",
                version="abc",
                kind="load",
                message="new version live",
            )
        )
        store.audit.record(
            AuditEntry(
                at=2.0,
                owner="sip:bob@example.com",
                script="example.com/bob.py",
                version="abc",
                kind="violation:timeout",
                message="the script used its CPU time",
                line=3,
                call_id="c1",
            )
        )
        store.audit.record(
            AuditEntry(
                at=3.0,
                owner="sip:eve@example.com",
                script="example.com/eve.py",
                version="def",
                kind="reject",
                message="x",
            )
        )
    finally:
        store.close()


def test_audit_filters_by_user_and_kind_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries come newest first; --user and --kind narrow them; --json gives one object per line."""
    db = tmp_path / "callscript.db"
    _seed(db)
    assert main(["audit", "--db", str(db), "--user", "sip:bob@example.com", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in lines] == ["violation:timeout", "load"]
    assert lines[0]["line"] == 3 and lines[0]["call_id"] == "c1"
    assert main(["audit", "--db", str(db), "--kind", "violation"]) == 0
    out = capsys.readouterr().out
    assert "violation:timeout sip:bob@example.com example.com/bob.py:3 (abc) call c1" in out
    assert "eve" not in out
