"""What only the SQLite store does: persistence, migrations, pragmas, the file's bytes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from callscript.store import SCHEMA_VERSION, Binding, SqliteStore, StoreError

AOR = "sip:alice@example.com"
NOW = 1_700_000_000.0


def binding(contact: str, **changes: object) -> Binding:
    fields: dict[str, object] = {
        "aor": AOR,
        "contact": contact,
        "expires_at": NOW + 3600,
        "call_id": "c1@192.0.2.1",
        "cseq": 7,
    }
    fields.update(changes)
    return Binding(**fields)  # type: ignore[arg-type]


def test_bindings_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    saved = [
        binding("sip:alice@192.0.2.1:5060", q=0.7, path=("<sip:edge.example.com;lr>",)),
        binding("sip:alice@198.51.100.2", received="tcp:198.51.100.2:50000", reg_id=2),
    ]
    with SqliteStore(path) as store:
        for b in saved:
            store.location.save(b)
    with SqliteStore(path) as store:
        assert store.location.bindings(AOR, now=NOW) == [saved[1], saved[0]]
        # The save order survives too: a new save is still the newest.
        store.location.save(binding("sip:alice@203.0.113.9", q=0.7))
        assert [b.contact for b in store.location.bindings(AOR, now=NOW)][1] == (
            "sip:alice@203.0.113.9"
        )


def test_accounts_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    with SqliteStore(path) as store:
        added = store.accounts.add("alice", "example.com", "s3cret", role="admin", now=NOW)
    with SqliteStore(path) as store:
        assert store.accounts.get("alice", "example.com") == added
        assert store.accounts.list() == [added]


def test_the_database_file_never_holds_the_password(tmp_path: Path) -> None:
    password = "Correct-Horse-Battery-Staple-42"
    with SqliteStore(tmp_path / "cs.db") as store:
        store.accounts.add("alice", "example.com", password, now=NOW)
        store.accounts.set_password("alice", "example.com", password + "!")
        ha1 = store.accounts.ha1("alice", "example.com", "MD5")
    files = list(tmp_path.iterdir())
    assert files
    data = b"".join(f.read_bytes() for f in files)
    assert ha1 is not None and ha1.encode() in data  # the file is readable as bytes
    assert password.encode() not in data
    assert password.encode("utf-16-le") not in data


def test_schema_is_created_once_and_its_version_recorded(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    with SqliteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    with SqliteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    finally:
        conn.close()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_database_from_a_newer_callscript_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future')", (SCHEMA_VERSION + 1,)
        )
    conn.close()
    with pytest.raises(StoreError, match="newer than this callscript"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    path.write_bytes(b"this is not an SQLite database, just text " * 100)
    with pytest.raises(StoreError):
        SqliteStore(path)


def test_file_database_uses_wal_and_enforces_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    with SqliteStore(path) as store:
        store.accounts.add("alice", "example.com", "s3cret", now=NOW)
        store.accounts.remove("alice", "example.com")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # ON DELETE CASCADE ran: no H(A1) row outlives its account.
        assert conn.execute("SELECT COUNT(*) FROM account_ha1").fetchone() == (0,)
    finally:
        conn.close()


def test_memory_database_works_and_starts_empty() -> None:
    with SqliteStore(":memory:") as first, SqliteStore() as second:
        first.location.save(binding("sip:alice@192.0.2.1"))
        assert first.location.count(now=NOW) == 1
        assert second.location.count(now=NOW) == 0


def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    with SqliteStore(path) as one, SqliteStore(path) as two:
        one.location.save(binding("sip:alice@192.0.2.1"))
        assert two.location.find(AOR, "sip:alice@192.0.2.1", now=NOW) is not None
        two.location.save(binding("sip:alice@192.0.2.1", cseq=8))
        found = one.location.find(AOR, "sip:alice@192.0.2.1", now=NOW)
        assert found is not None and found.cseq == 8


def test_store_can_be_used_from_another_thread(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with SqliteStore(tmp_path / "cs.db") as store:

        def work() -> None:
            try:
                for i in range(20):
                    store.location.save(binding(f"sip:t{i}@192.0.2.1"))
            except BaseException as exc:  # handed back to the test thread
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        for i in range(20):
            store.location.save(binding(f"sip:m{i}@192.0.2.1"))
        thread.join()
        assert errors == []
        assert store.location.count(now=NOW) == 40


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "cs.db") as store:
        store.location.save(binding("sip:alice@192.0.2.1"))
        with pytest.raises(StoreError):
            store.location.save(binding("no uri here"))
        assert [b.cseq for b in store.location.bindings(AOR, now=NOW)] == [7]


def test_using_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cs.db")
    store.close()
    with pytest.raises(StoreError):
        store.location.count(now=NOW)
    with pytest.raises(StoreError):
        store.location.save(binding("sip:alice@192.0.2.1"))


def test_a_corrupt_binding_row_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "cs.db"
    with SqliteStore(path) as store:
        store.location.save(binding("sip:alice@192.0.2.1"))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE bindings SET path = 'not json'")
    conn.close()
    with SqliteStore(path) as store, pytest.raises(StoreError, match="corrupt binding"):
        store.location.bindings(AOR, now=NOW)
