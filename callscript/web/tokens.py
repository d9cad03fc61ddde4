"""Bearer tokens of the management API: tokens an admin issues, and console sessions.

Only a SHA-256 of each token is stored, so a copy of the database does not
hand out access. A token names a user (``username``, ``domain``); the user's
role is read from the accounts at each use, so demoting an admin takes effect
at once.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from dataclasses import dataclass

from callscript.store.sqlite_db import Database, Row, as_float, as_int

PREFIX = "cst_"


def token_hash(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: int
    username: str
    domain: str
    kind: str
    label: str
    created_by: str
    created_at: float
    expires_at: float | None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values."""
        return {
            "id": self.id,
            "user": f"{self.username}@{self.domain}",
            "kind": self.kind,
            "label": self.label,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


_COLUMNS = "id, username, domain, kind, label, created_by, created_at, expires_at"


class TokenStore:
    """Tokens in the ``api_tokens`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def issue(
        self,
        username: str,
        domain: str,
        *,
        kind: str,
        label: str,
        created_by: str,
        now: float,
        ttl: float | None,
    ) -> tuple[str, TokenInfo]:
        """A new token (shown once) and what is stored about it."""
        token = PREFIX + secrets.token_urlsafe(32)
        expires = None if ttl is None else now + ttl
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO api_tokens (token_hash, username, domain, kind, label, created_by,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token_hash(token), username, domain, kind, label, created_by, now, expires),
            )
            row = conn.query(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = ?", (token_hash(token),)
            )[0]
        return token, _info(row)

    def lookup(self, token: str, *, now: float) -> TokenInfo | None:
        """The unexpired token ``token`` is, or ``None``."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        rows = self._db.read(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = ?"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (token_hash(token), now),
        )
        return _info(rows[0]) if rows else None

    def revoke(self, token_id: int) -> bool:
        """Delete a token by id; False when there was none."""
        with self._db.write() as conn:
            return conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,)) > 0

    def revoke_token(self, token: str) -> bool:
        """Delete a token by its secret (a console signing out)."""
        with self._db.write() as conn:
            return (
                conn.execute("DELETE FROM api_tokens WHERE token_hash = ?", (token_hash(token),))
                > 0
            )

    def list(self, *, kind: str = "token") -> builtins.list[TokenInfo]:
        """Every stored token of ``kind``, oldest first."""
        rows = self._db.read(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE kind = ? ORDER BY id", (kind,)
        )
        return [_info(row) for row in rows]

    def expire(self, *, now: float) -> int:
        """Delete expired tokens and sessions; how many."""
        with self._db.write() as conn:
            return conn.execute(
                "DELETE FROM api_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )


def _info(row: Row) -> TokenInfo:
    return TokenInfo(
        id=as_int(row[0]),
        username=str(row[1]),
        domain=str(row[2]),
        kind=str(row[3]),
        label=str(row[4]),
        created_by=str(row[5]),
        created_at=as_float(row[6]),
        expires_at=None if row[7] is None else as_float(row[7]),
    )
