"""Digest accounts in SQLite: ``accounts`` plus one ``account_ha1`` row per algorithm."""

from __future__ import annotations

import builtins

from callscript.store.base import (
    Account,
    AccountExists,
    AccountNotFound,
    Role,
    StoreError,
    canonical_algorithm,
    check_account_names,
    compute_ha1s,
)
from callscript.store.sqlite_db import Database, Transaction, as_float

_ACCOUNT_QUERY = (
    "SELECT a.username, a.domain, a.realm, a.role, a.created_at, h.algorithm, h.ha1"
    " FROM accounts a LEFT JOIN account_ha1 h"
    " ON h.username = a.username AND h.domain = a.domain"
)


class SqliteAccountStore:
    """An :class:`~callscript.store.base.AccountStore` in ``accounts`` and ``account_ha1``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        username: str,
        domain: str,
        password: str,
        *,
        realm: str | None = None,
        role: Role = "user",
        now: float,
    ) -> Account:
        """See :meth:`AccountStore.add`."""
        domain = domain.lower()
        realm = domain if realm is None else realm
        check_account_names(username, domain, realm, role)
        account = Account(
            username=username,
            domain=domain,
            realm=realm,
            ha1=compute_ha1s(username, realm, password),
            role=role,
            created_at=now,
        )
        # BEGIN IMMEDIATE holds the write lock, so nobody adds the same name in between.
        with self._db.write() as conn:
            taken = conn.query(
                "SELECT 1 FROM accounts WHERE username = ? AND (domain = ? OR realm = ?)",
                (username, domain, realm),
            )
            if taken:
                raise AccountExists(f"{username}@{domain} (realm {realm!r}) already exists")
            conn.execute(
                "INSERT INTO accounts (username, domain, realm, role, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (username, domain, realm, role, now),
            )
            _insert_ha1s(conn, account)
        return account

    def set_password(self, username: str, domain: str, password: str) -> None:
        """See :meth:`AccountStore.set_password`."""
        domain = domain.lower()
        with self._db.write() as conn:
            rows = conn.query(
                "SELECT realm FROM accounts WHERE username = ? AND domain = ?", (username, domain)
            )
            if not rows:
                raise AccountNotFound(f"no account {username}@{domain}")
            realm = str(rows[0][0])
            conn.execute(
                "DELETE FROM account_ha1 WHERE username = ? AND domain = ?", (username, domain)
            )
            _insert_ha1s(
                conn,
                Account(
                    username=username,
                    domain=domain,
                    realm=realm,
                    ha1=compute_ha1s(username, realm, password),
                ),
            )

    def remove(self, username: str, domain: str) -> None:
        """See :meth:`AccountStore.remove`."""
        domain = domain.lower()
        with self._db.write() as conn:
            # The account_ha1 rows go with it (ON DELETE CASCADE).
            gone = conn.execute(
                "DELETE FROM accounts WHERE username = ? AND domain = ?", (username, domain)
            )
            if not gone:
                raise AccountNotFound(f"no account {username}@{domain}")

    def get(self, username: str, realm: str) -> Account | None:
        """See :meth:`AccountStore.get`."""
        rows = self._db.read(
            f"{_ACCOUNT_QUERY} WHERE a.username = ? AND a.realm = ?", (username, realm)
        )
        accounts = _accounts(rows)
        return accounts[0] if accounts else None

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """See :meth:`AccountStore.ha1`."""
        name = canonical_algorithm(algorithm)
        if name is None:
            return None
        rows = self._db.read(
            "SELECT h.ha1 FROM accounts a JOIN account_ha1 h"
            " ON h.username = a.username AND h.domain = a.domain"
            " WHERE a.username = ? AND a.realm = ? AND h.algorithm = ?",
            (username, realm, name),
        )
        return str(rows[0][0]) if rows else None

    def list(self, domain: str | None = None) -> builtins.list[Account]:
        """See :meth:`AccountStore.list`."""
        if domain is None:
            rows = self._db.read(f"{_ACCOUNT_QUERY} ORDER BY a.domain, a.username")
        else:
            rows = self._db.read(
                f"{_ACCOUNT_QUERY} WHERE a.domain = ? ORDER BY a.domain, a.username",
                (domain.lower(),),
            )
        return _accounts(rows)


def _insert_ha1s(conn: Transaction, account: Account) -> None:
    conn.execute_many(
        "INSERT INTO account_ha1 (username, domain, algorithm, ha1) VALUES (?, ?, ?, ?)",
        [(account.username, account.domain, name, ha1) for name, ha1 in account.ha1.items()],
    )


def _accounts(rows: builtins.list[tuple[object, ...]]) -> builtins.list[Account]:
    """Group joined (account, algorithm, ha1) rows into accounts, keeping their order."""
    grouped: dict[tuple[str, str], tuple[tuple[object, ...], dict[str, str]]] = {}
    for row in rows:
        key = (str(row[0]), str(row[1]))
        _, ha1s = grouped.setdefault(key, (row, {}))
        if row[5] is not None:
            ha1s[str(row[5])] = str(row[6])
    out = []
    for (username, domain), (row, ha1s) in grouped.items():
        role = str(row[3])
        if role not in ("user", "admin"):
            raise StoreError(f"corrupt account row for {username}@{domain}: role {role!r}")
        out.append(
            Account(
                username=username,
                domain=domain,
                realm=str(row[2]),
                ha1=ha1s,
                role="admin" if role == "admin" else "user",
                created_at=as_float(row[4]),
            )
        )
    return out
