"""SQLite stores: one database file, no other service to run.

:class:`SqliteStore` opens the database (:mod:`callscript.store.sqlite_db`),
brings its schema up to date (:mod:`callscript.store.schema`) and hands out
``.location`` (here) and ``.accounts`` (:mod:`callscript.store.sqlite_accounts`).
"""

from __future__ import annotations

import json
import os

from callscript.sip.uri import URI
from callscript.store.audit import SqliteAuditLog
from callscript.store.base import (
    Binding,
    StoreError,
    contact_key,
    contacts_equal,
    order_bindings,
    parse_contact,
)
from callscript.store.sqlite_accounts import SqliteAccountStore
from callscript.store.sqlite_db import Database, Transaction, as_float, as_int, migrate

MEMORY = ":memory:"

_BINDING_COLUMNS = (
    "seq, aor, contact, q, expires_at, call_id, cseq,"
    " received, path, instance_id, reg_id, user_agent"
)


class SqliteStore:
    """A :class:`~callscript.store.base.Store` in one SQLite file (or ``:memory:``).

    Raises:
        StoreError: the file cannot be opened, is not a database, or has a newer schema.
    """

    def __init__(self, path: str | os.PathLike[str] = MEMORY) -> None:
        self._db = Database(os.fspath(path))
        try:
            self.schema_version = migrate(self._db)
        except BaseException:
            self._db.close()
            raise
        self._location = SqliteLocationStore(self._db)
        self._accounts = SqliteAccountStore(self._db)
        self._audit = SqliteAuditLog(self._db)

    @property
    def location(self) -> SqliteLocationStore:
        """The location service."""
        return self._location

    @property
    def accounts(self) -> SqliteAccountStore:
        """The digest accounts."""
        return self._accounts

    @property
    def database(self) -> Database:
        """The connection, for the stores other packages keep in the same file."""
        return self._db

    @property
    def audit(self) -> SqliteAuditLog:
        """The audit log."""
        return self._audit

    def close(self) -> None:
        """Close the connection; the stores must not be used afterwards."""
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteLocationStore:
    """A :class:`~callscript.store.base.LocationStore` in the ``bindings`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def bindings(self, aor: str, *, now: float) -> list[Binding]:
        """See :meth:`LocationStore.bindings`."""
        rows = self._db.read(
            f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE aor = ? AND expires_at > ?",
            (aor, now),
        )
        return order_bindings([_binding(row) for row in rows])

    def find(self, aor: str, contact: str, *, now: float) -> Binding | None:
        """See :meth:`LocationStore.find`."""
        uri = parse_contact(contact)
        rows = self._db.read(
            f"SELECT {_BINDING_COLUMNS} FROM bindings"
            " WHERE aor = ? AND contact_key = ? AND expires_at > ? ORDER BY seq DESC",
            (aor, contact_key(uri), now),
        )
        for row in rows:
            _, binding = _binding(row)
            if contacts_equal(parse_contact(binding.contact), uri):
                return binding
        return None

    def save(self, binding: Binding) -> None:
        """See :meth:`LocationStore.save`."""
        uri = parse_contact(binding.contact)
        key = contact_key(uri)
        with self._db.write() as conn:
            _delete_equal(conn, binding.aor, uri, key)
            conn.execute(
                "INSERT INTO bindings (aor, contact, contact_key, seq, q, expires_at, call_id,"
                " cseq, received, path, instance_id, reg_id, user_agent) VALUES"
                " (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM bindings),"
                " ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    binding.aor,
                    binding.contact,
                    key,
                    binding.q,
                    binding.expires_at,
                    binding.call_id,
                    binding.cseq,
                    binding.received,
                    json.dumps(list(binding.path)),
                    binding.instance_id,
                    binding.reg_id,
                    binding.user_agent,
                ),
            )

    def remove(self, aor: str, contact: str) -> int:
        """See :meth:`LocationStore.remove`."""
        uri = parse_contact(contact)
        with self._db.write() as conn:
            return _delete_equal(conn, aor, uri, contact_key(uri))

    def remove_all(self, aor: str) -> int:
        """See :meth:`LocationStore.remove_all`."""
        with self._db.write() as conn:
            return conn.execute("DELETE FROM bindings WHERE aor = ?", (aor,))

    def expire(self, *, now: float) -> int:
        """See :meth:`LocationStore.expire`."""
        with self._db.write() as conn:
            return conn.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))

    def count(self, *, now: float) -> int:
        """See :meth:`LocationStore.count`."""
        rows = self._db.read("SELECT COUNT(*) FROM bindings WHERE expires_at > ?", (now,))
        return as_int(rows[0][0])


def _delete_equal(conn: Transaction, aor: str, uri: URI, key: str) -> int:
    """Delete the bindings of ``aor`` whose contact equals ``uri``; returns how many."""
    rows = conn.query("SELECT contact FROM bindings WHERE aor = ? AND contact_key = ?", (aor, key))
    removed = 0
    for (text,) in rows:
        # RFC 3261 §19.1.4: the key narrowed the rows down; URI comparison decides.
        if contacts_equal(parse_contact(str(text)), uri):
            conn.execute("DELETE FROM bindings WHERE aor = ? AND contact = ?", (aor, text))
            removed += 1
    return removed


def _binding(row: tuple[object, ...]) -> tuple[int, Binding]:
    seq, aor, contact, q, expires_at, call_id, cseq, received, path, instance_id, reg_id, ua = row
    try:
        hops = json.loads(str(path))
        if not isinstance(hops, list) or not all(isinstance(h, str) for h in hops):
            raise ValueError("path is not a list of strings")
        return as_int(seq), Binding(
            aor=str(aor),
            contact=str(contact),
            q=as_float(q),
            expires_at=as_float(expires_at),
            call_id=str(call_id),
            cseq=as_int(cseq),
            received=None if received is None else str(received),
            path=tuple(hops),
            instance_id=None if instance_id is None else str(instance_id),
            reg_id=None if reg_id is None else as_int(reg_id),
            user_agent=None if ua is None else str(ua),
        )
    except (ValueError, TypeError) as exc:
        raise StoreError(f"corrupt binding row for {aor!r}: {exc}") from exc
