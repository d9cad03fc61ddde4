"""Script versions: every accepted upload, immutable, and which one is live.

Each accepted upload of a script becomes a :class:`Version` (id, script name,
owner, author, time, content hash, source) that never changes; the live pointer
of a script names one of them, or none once the script is deleted. Rollback
moves the pointer back; nothing is ever rewritten. The scripts directory holds
the live source for the running server (``<scripts_dir>/<domain>/<user>.py``);
this store keeps the history.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass
from typing import Protocol

from callscript.store.base import StoreError
from callscript.store.sqlite_db import Database, Row, Transaction, as_float, as_int


class VersionNotFound(StoreError):
    """No version with this id belongs to the script."""


def content_hash(source: str) -> str:
    """The SHA-256 hex digest of a script's source (the same as the live registry's)."""
    return hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    """One accepted version of a script.

    Attributes:
        id: unique over all scripts, increasing.
        name: the script's name (``example.com/alice.py``).
        owner: the owner's address of record (``sip:alice@example.com``).
        author: who uploaded it (``alice@example.com``; an admin's name when an admin did).
        created_at: wall-clock epoch seconds.
        digest: SHA-256 hex of the source.
        source: the script.
    """

    id: int
    name: str
    owner: str
    author: str
    created_at: float
    digest: str
    source: str

    @property
    def short(self) -> str:
        """The digest's short form, as the audit log and the logs show versions."""
        return self.digest[:12]


class VersionStore(Protocol):
    """The history of every script and its live pointer."""

    def add(self, name: str, owner: str, author: str, source: str, *, now: float) -> Version:
        """Store a new version and make it live."""
        ...

    def get(self, name: str, version_id: int) -> Version:
        """One version of ``name``.

        Raises:
            VersionNotFound: no such version of this script.
        """
        ...

    def history(self, name: str, *, limit: int = 100) -> builtins.list[Version]:
        """The versions of ``name``, newest first."""
        ...

    def live(self, name: str) -> Version | None:
        """The live version of ``name``, or ``None`` (never uploaded, or deleted)."""
        ...

    def set_live(self, name: str, version_id: int, *, now: float) -> Version:
        """Make an existing version live again (rollback).

        Raises:
            VersionNotFound: no such version of this script.
        """
        ...

    def clear_live(self, name: str, *, now: float) -> bool:
        """No version of ``name`` is live any more; False when none was."""
        ...

    def names(self) -> builtins.list[str]:
        """Every script with at least one version, sorted."""
        ...


_COLUMNS = "id, name, owner, author, created_at, digest, source"


class SqliteVersionStore:
    """A :class:`VersionStore` in the ``script_versions`` and ``script_live`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, name: str, owner: str, author: str, source: str, *, now: float) -> Version:
        """See :meth:`VersionStore.add`."""
        digest = content_hash(source)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO script_versions (name, owner, author, created_at, digest, source)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, owner, author, now, digest, source),
            )
            row = conn.query(
                f"SELECT {_COLUMNS} FROM script_versions WHERE name = ? ORDER BY id DESC LIMIT 1",
                (name,),
            )[0]
            version = _version(row)
            _point(conn, name, version.id, now)
        return version

    def get(self, name: str, version_id: int) -> Version:
        """See :meth:`VersionStore.get`."""
        rows = self._db.read(
            f"SELECT {_COLUMNS} FROM script_versions WHERE name = ? AND id = ?",
            (name, version_id),
        )
        if not rows:
            raise VersionNotFound(f"{name} has no version {version_id}")
        return _version(rows[0])

    def history(self, name: str, *, limit: int = 100) -> builtins.list[Version]:
        """See :meth:`VersionStore.history`."""
        rows = self._db.read(
            f"SELECT {_COLUMNS} FROM script_versions WHERE name = ? ORDER BY id DESC LIMIT ?",
            (name, max(0, limit)),
        )
        return [_version(row) for row in rows]

    def live(self, name: str) -> Version | None:
        """See :meth:`VersionStore.live`."""
        rows = self._db.read(
            "SELECT v.id, v.name, v.owner, v.author, v.created_at, v.digest, v.source"
            " FROM script_live l JOIN script_versions v ON v.id = l.version_id"
            " WHERE l.name = ?",
            (name,),
        )
        return _version(rows[0]) if rows else None

    def set_live(self, name: str, version_id: int, *, now: float) -> Version:
        """See :meth:`VersionStore.set_live`."""
        with self._db.write() as conn:
            rows = conn.query(
                f"SELECT {_COLUMNS} FROM script_versions WHERE name = ? AND id = ?",
                (name, version_id),
            )
            if not rows:
                raise VersionNotFound(f"{name} has no version {version_id}")
            _point(conn, name, version_id, now)
        return _version(rows[0])

    def clear_live(self, name: str, *, now: float) -> bool:
        """See :meth:`VersionStore.clear_live`."""
        with self._db.write() as conn:
            return conn.execute("DELETE FROM script_live WHERE name = ?", (name,)) > 0

    def names(self) -> builtins.list[str]:
        """See :meth:`VersionStore.names`."""
        rows = self._db.read("SELECT DISTINCT name FROM script_versions ORDER BY name")
        return [str(row[0]) for row in rows]


class MemoryVersionStore:
    """A :class:`VersionStore` in memory, for unit tests."""

    def __init__(self) -> None:
        self._versions: list[Version] = []
        self._live: dict[str, int] = {}

    def add(self, name: str, owner: str, author: str, source: str, *, now: float) -> Version:
        """See :meth:`VersionStore.add`."""
        version = Version(
            id=len(self._versions) + 1,
            name=name,
            owner=owner,
            author=author,
            created_at=now,
            digest=content_hash(source),
            source=source,
        )
        self._versions.append(version)
        self._live[name] = version.id
        return version

    def get(self, name: str, version_id: int) -> Version:
        """See :meth:`VersionStore.get`."""
        for version in self._versions:
            if version.name == name and version.id == version_id:
                return version
        raise VersionNotFound(f"{name} has no version {version_id}")

    def history(self, name: str, *, limit: int = 100) -> builtins.list[Version]:
        """See :meth:`VersionStore.history`."""
        return [v for v in reversed(self._versions) if v.name == name][: max(0, limit)]

    def live(self, name: str) -> Version | None:
        """See :meth:`VersionStore.live`."""
        version_id = self._live.get(name)
        return None if version_id is None else self.get(name, version_id)

    def set_live(self, name: str, version_id: int, *, now: float) -> Version:
        """See :meth:`VersionStore.set_live`."""
        version = self.get(name, version_id)
        self._live[name] = version_id
        return version

    def clear_live(self, name: str, *, now: float) -> bool:
        """See :meth:`VersionStore.clear_live`."""
        return self._live.pop(name, None) is not None

    def names(self) -> builtins.list[str]:
        """See :meth:`VersionStore.names`."""
        return sorted({v.name for v in self._versions})


def _point(conn: Transaction, name: str, version_id: int, now: float) -> None:
    # Plain DELETE + INSERT rather than an upsert: the same SQL runs on PostgreSQL.
    conn.execute("DELETE FROM script_live WHERE name = ?", (name,))
    conn.execute(
        "INSERT INTO script_live (name, version_id, updated_at) VALUES (?, ?, ?)",
        (name, version_id, now),
    )


def _version(row: Row) -> Version:
    return Version(
        id=as_int(row[0]),
        name=str(row[1]),
        owner=str(row[2]),
        author=str(row[3]),
        created_at=as_float(row[4]),
        digest=str(row[5]),
        source=str(row[6]),
    )
