"""The audit log: every script load, rejected version, sandbox violation and quarantine.

Admins read it with ``callscript audit`` (and later the management API); both
read the same table. Entries are append-only.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol

from callscript.store.sqlite_db import Database, as_float, as_int

KINDS = (
    "load",  # a script version became live
    "reject",  # a version failed to compile or break the policy; the previous one stays live
    "delete",  # a script was removed
    "violation",  # a step failed: error, timeout, memory, crash
    "quarantine",  # a script was put in quarantine
    "release",  # a quarantine ended
    "access",  # the management API refused an access (access:denied)
    "upload",  # a script version uploaded through the API
    "rollback",  # a previous version made live again
    "policy",  # a per-domain policy override set or removed
    "token",  # an API token issued or revoked
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One audited event.

    Attributes:
        at: wall-clock epoch seconds.
        owner: the script owner's address of record (``sip:alice@example.com``).
        script: the script's name (``example.com/alice.py``).
        version: the script version's content digest (short form), or ``""``.
        kind: one of :data:`KINDS`, with a sub-kind after a colon (``violation:timeout``).
        line: the script line concerned, when known.
        message: what happened, for a human.
        call_id: the call it happened in, when any.
    """

    at: float
    owner: str
    script: str
    version: str
    kind: str
    message: str
    line: int | None = None
    call_id: str | None = None
    id: int = 0


class AuditLog(Protocol):
    """Where audit entries go and how they are read back."""

    def record(self, entry: AuditEntry) -> None:
        """Append ``entry``."""
        ...

    def entries(
        self, *, owner: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """The newest entries first, filtered by owner and by kind (prefix before ':')."""
        ...


class MemoryAuditLog:
    """An :class:`AuditLog` in memory, for tests."""

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self._entries.append(_with_id(entry, len(self._entries) + 1))

    def entries(
        self, *, owner: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        found = [e for e in reversed(self._entries) if _matches(e, owner, kind)]
        return found[:limit]


class SqliteAuditLog:
    """An :class:`AuditLog` in the ``audit`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, entry: AuditEntry) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO audit (at, owner, script, version, kind, line, message, call_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.at,
                    entry.owner,
                    entry.script,
                    entry.version,
                    entry.kind,
                    entry.line,
                    entry.message,
                    entry.call_id,
                ),
            )

    def entries(
        self, *, owner: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        where: list[str] = []
        params: list[object] = []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if kind is not None:
            where.append("(kind = ? OR kind LIKE ?)")
            params += [kind, f"{kind}:%"]
        sql = "SELECT id, at, owner, script, version, kind, line, message, call_id FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(max(0, limit))
        return [
            AuditEntry(
                id=as_int(row[0]),
                at=as_float(row[1]),
                owner=str(row[2]),
                script=str(row[3]),
                version=str(row[4]),
                kind=str(row[5]),
                line=None if row[6] is None else as_int(row[6]),
                message=str(row[7]),
                call_id=None if row[8] is None else str(row[8]),
            )
            for row in self._db.read(sql, params)
        ]


def _matches(entry: AuditEntry, owner: str | None, kind: str | None) -> bool:
    if owner is not None and entry.owner != owner:
        return False
    return kind is None or entry.kind == kind or entry.kind.startswith(kind + ":")


def _with_id(entry: AuditEntry, number: int) -> AuditEntry:
    from dataclasses import replace

    return replace(entry, id=number)
