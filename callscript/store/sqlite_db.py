"""The SQLite connection the stores share, and the schema migrations run on it.

One connection (WAL journal, busy timeout, foreign keys on) usable from any
thread: a lock lets one statement or transaction through at a time. Writes
run in ``BEGIN IMMEDIATE`` transactions, so a reader never sees half a change.
Every string goes in through :func:`~callscript.store.base.to_sql_text` and
comes out through :func:`~callscript.store.base.from_sql_text`, so text from
a peer (undecodable bytes, NUL) is stored and read back exactly.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from callscript.store.base import StoreError, from_sql_text, to_sql_text
from callscript.store.schema import (
    CREATE_VERSION_TABLE,
    CURRENT_VERSION_QUERY,
    MIGRATIONS,
    RECORD_VERSION,
    SCHEMA_VERSION,
)

BUSY_TIMEOUT_MS = 5000

_Params = Sequence[object]
Row = tuple[object, ...]


def _encode(params: _Params) -> list[object]:
    return [to_sql_text(p) if isinstance(p, str) else p for p in params]


def _decode(rows: list[Row]) -> list[Row]:
    return [tuple(from_sql_text(v) if isinstance(v, str) else v for v in row) for row in rows]


class Transaction:
    """The statements of one write transaction; results are read in full at once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, params: _Params = ()) -> list[Row]:
        """All rows of one query."""
        return _decode(self._conn.execute(sql, _encode(params)).fetchall())

    def execute(self, sql: str, params: _Params = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        return self._conn.execute(sql, _encode(params)).rowcount

    def execute_many(self, sql: str, rows: Sequence[_Params]) -> None:
        """Run one statement once per parameter row."""
        self._conn.executemany(sql, [_encode(row) for row in rows])


class Database:
    """One connection and the lock that serialises its use."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        try:
            # isolation_level=None: no implicit transactions; Database.write opens them.
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path!r}: {exc}") from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open database {path!r}: {exc}") from exc

    def read(self, sql: str, params: _Params = ()) -> list[Row]:
        """All rows of one query, outside any write transaction."""
        with self._lock:
            try:
                return _decode(self._conn.execute(sql, _encode(params)).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"database read failed: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"database busy or unwritable: {exc}") from exc
            try:
                yield Transaction(self._conn)
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"database write failed: {exc}") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"database write failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def migrate(db: Database) -> int:
    """Apply the migrations the database lacks; returns the resulting version."""
    with db.write() as conn:
        conn.execute(CREATE_VERSION_TABLE)
    current = as_int(db.read(CURRENT_VERSION_QUERY)[0][0] or 0)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {current} is newer than this callscript ({SCHEMA_VERSION})"
        )
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        try:
            with db.write() as conn:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(RECORD_VERSION, (migration.version, migration.description))
        except StoreError as exc:
            raise StoreError(f"schema migration {migration.version} failed: {exc}") from exc
    return SCHEMA_VERSION


def as_int(value: object) -> int:
    """``value`` read from the database, which must be an integer."""
    if not isinstance(value, int):
        raise StoreError(f"expected an integer from the database, got {value!r}")
    return value


def as_float(value: object) -> float:
    """``value`` read from the database, which must be a number."""
    if not isinstance(value, (int, float)):
        raise StoreError(f"expected a number from the database, got {value!r}")
    return float(value)
