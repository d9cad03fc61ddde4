"""The script versions store and the call log, in memory and in SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript.store.calllog import CallLog, CallRecord, MemoryCallLog, SqliteCallLog
from callscript.store.sqlite import SqliteStore
from callscript.store.sqlite_db import Database
from callscript.store.versions import (
    MemoryVersionStore,
    SqliteVersionStore,
    VersionNotFound,
    VersionStore,
    content_hash,
)

NAME = "example.com/alice.py"
OWNER = "sip:alice@example.com"


@pytest.fixture(params=["memory", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database | None]:
    if request.param == "memory":
        yield None
        return
    SqliteStore(tmp_path / "cs.db").close()  # creates the schema
    database = Database(str(tmp_path / "cs.db"))
    yield database
    database.close()


@pytest.fixture
def versions(db: Database | None) -> VersionStore:
    return MemoryVersionStore() if db is None else SqliteVersionStore(db)


def call_log(db: Database | None, keep: int) -> CallLog:
    return MemoryCallLog(keep=keep) if db is None else SqliteCallLog(db, keep=keep)


def test_each_upload_is_a_new_immutable_version_and_becomes_live(versions: VersionStore) -> None:
    first = versions.add(NAME, OWNER, "alice@example.com", "a = 1\n", now=10.0)
    second = versions.add(NAME, OWNER, "admin@example.com", "a = 2\n", now=20.0)
    assert second.id > first.id
    assert versions.live(NAME) == second
    assert [v.id for v in versions.history(NAME)] == [second.id, first.id]
    assert versions.get(NAME, first.id).source == "a = 1\n"
    assert first.digest == content_hash("a = 1\n") and first.short == first.digest[:12]
    assert (second.author, second.created_at) == ("admin@example.com", 20.0)


def test_rollback_moves_the_live_pointer_without_new_versions(versions: VersionStore) -> None:
    first = versions.add(NAME, OWNER, "alice@example.com", "a = 1\n", now=10.0)
    versions.add(NAME, OWNER, "alice@example.com", "a = 2\n", now=20.0)
    assert versions.set_live(NAME, first.id, now=30.0) == first
    assert versions.live(NAME) == first
    assert len(versions.history(NAME)) == 2


def test_delete_clears_the_live_pointer_and_keeps_history(versions: VersionStore) -> None:
    versions.add(NAME, OWNER, "alice@example.com", "a = 1\n", now=10.0)
    assert versions.clear_live(NAME, now=11.0) is True
    assert versions.live(NAME) is None
    assert versions.clear_live(NAME, now=12.0) is False
    assert len(versions.history(NAME)) == 1
    assert versions.names() == [NAME]


def test_versions_of_another_script_are_not_found(versions: VersionStore) -> None:
    other = versions.add("example.com/bob.py", "sip:bob@example.com", "bob", "b = 1\n", now=1.0)
    with pytest.raises(VersionNotFound):
        versions.get(NAME, other.id)
    with pytest.raises(VersionNotFound):
        versions.set_live(NAME, other.id, now=2.0)


def record(owner: str, n: int) -> CallRecord:
    return CallRecord(
        at=float(n),
        owner=owner,
        call_id=f"call-{n}",
        method="INVITE",
        direction="incoming",
        caller="sip:carol@example.net",
        callee=owner,
        script="example.com/alice.py",
        version="abc123",
        actions=(
            {"kind": "proxy", "targets": ["sip:a@b"], "outcome": "busy"},
            {"kind": "voicemail"},
        ),
        status=200,
        violation=None if n % 2 else "timeout: too slow",
    )


def test_call_log_keeps_the_newest_records_per_owner(db: Database | None) -> None:
    log = call_log(db, keep=3)
    for n in range(5):
        log.record(record(OWNER, n))
    log.record(record("sip:bob@example.com", 9))
    recent = log.recent(OWNER)
    assert [r.call_id for r in recent] == ["call-4", "call-3", "call-2"]
    assert recent[0].actions[0]["outcome"] == "busy"
    assert recent[0].violation == "timeout: too slow" and recent[1].violation is None
    assert [r.call_id for r in log.recent("sip:bob@example.com")] == ["call-9"]
    assert log.recent(OWNER, limit=1)[0].to_dict()["actions"][1] == {"kind": "voicemail"}
