"""In-memory stores: the same behaviour as the SQLite ones, kept in dicts.

For unit tests and for a proxy that needs no persistence. Each instance owns
its data; nothing is shared between instances.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace

from callscript.store.base import (
    Account,
    AccountExists,
    AccountNotFound,
    Binding,
    Role,
    canonical_algorithm,
    check_account_names,
    compute_ha1s,
    contact_key,
    contacts_equal,
    order_bindings,
    parse_contact,
)


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    key: str
    binding: Binding


class MemoryLocationStore:
    """A :class:`~callscript.store.base.LocationStore` in a dict of AOR -> rows."""

    def __init__(self) -> None:
        self._rows: dict[str, list[_Row]] = {}
        self._seq: Iterator[int] = itertools.count(1)

    def bindings(self, aor: str, *, now: float) -> list[Binding]:
        """See :meth:`LocationStore.bindings`."""
        live = [
            (r.seq, r.binding) for r in self._rows.get(aor, ()) if not r.binding.expired(now=now)
        ]
        return order_bindings(live)

    def find(self, aor: str, contact: str, *, now: float) -> Binding | None:
        """See :meth:`LocationStore.find`."""
        matches = [
            (r.seq, r.binding)
            for r in self._matching(aor, contact)
            if not r.binding.expired(now=now)
        ]
        return max(matches, key=lambda m: m[0])[1] if matches else None

    def save(self, binding: Binding) -> None:
        """See :meth:`LocationStore.save`."""
        uri = parse_contact(binding.contact)
        self.remove(binding.aor, binding.contact)
        row = _Row(next(self._seq), contact_key(uri), binding)
        self._rows.setdefault(binding.aor, []).append(row)

    def remove(self, aor: str, contact: str) -> int:
        """See :meth:`LocationStore.remove`."""
        gone = self._matching(aor, contact)
        if gone:
            self._keep(aor, [r for r in self._rows[aor] if r not in gone])
        return len(gone)

    def remove_all(self, aor: str) -> int:
        """See :meth:`LocationStore.remove_all`."""
        return len(self._rows.pop(aor, ()))

    def expire(self, *, now: float) -> int:
        """See :meth:`LocationStore.expire`."""
        removed = 0
        for aor, rows in list(self._rows.items()):
            kept = [r for r in rows if not r.binding.expired(now=now)]
            removed += len(rows) - len(kept)
            self._keep(aor, kept)
        return removed

    def count(self, *, now: float) -> int:
        """See :meth:`LocationStore.count`."""
        return sum(
            1 for rows in self._rows.values() for r in rows if not r.binding.expired(now=now)
        )

    def _matching(self, aor: str, contact: str) -> list[_Row]:
        uri = parse_contact(contact)
        key = contact_key(uri)
        return [
            r
            for r in self._rows.get(aor, ())
            if r.key == key and contacts_equal(parse_contact(r.binding.contact), uri)
        ]

    def _keep(self, aor: str, rows: list[_Row]) -> None:
        if rows:
            self._rows[aor] = rows
        else:
            self._rows.pop(aor, None)


class MemoryAccountStore:
    """An :class:`~callscript.store.base.AccountStore` in a dict keyed by (username, domain)."""

    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], Account] = {}

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
        if (username, domain) in self._accounts or self.get(username, realm) is not None:
            raise AccountExists(f"{username}@{domain} (realm {realm!r}) already exists")
        account = Account(
            username=username,
            domain=domain,
            realm=realm,
            ha1=compute_ha1s(username, realm, password),
            role=role,
            created_at=now,
        )
        self._accounts[(username, domain)] = account
        return account

    def set_password(self, username: str, domain: str, password: str) -> None:
        """See :meth:`AccountStore.set_password`."""
        old = self._existing(username, domain)
        new = replace(old, ha1=compute_ha1s(old.username, old.realm, password))
        self._accounts[(old.username, old.domain)] = new

    def remove(self, username: str, domain: str) -> None:
        """See :meth:`AccountStore.remove`."""
        old = self._existing(username, domain)
        del self._accounts[(old.username, old.domain)]

    def get(self, username: str, realm: str) -> Account | None:
        """See :meth:`AccountStore.get`."""
        for account in self._accounts.values():
            if account.username == username and account.realm == realm:
                return account
        return None

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """See :meth:`AccountStore.ha1`."""
        account = self.get(username, realm)
        name = canonical_algorithm(algorithm)
        if account is None or name is None:
            return None
        return account.ha1.get(name)

    def list(self, domain: str | None = None) -> builtins.list[Account]:
        """See :meth:`AccountStore.list`."""
        wanted = None if domain is None else domain.lower()
        found = [a for a in self._accounts.values() if wanted is None or a.domain == wanted]
        return sorted(found, key=lambda a: (a.domain, a.username))

    def _existing(self, username: str, domain: str) -> Account:
        account = self._accounts.get((username, domain.lower()))
        if account is None:
            raise AccountNotFound(f"no account {username}@{domain.lower()}")
        return account


class MemoryStore:
    """A :class:`~callscript.store.base.Store` that forgets everything on exit."""

    def __init__(self) -> None:
        self._location = MemoryLocationStore()
        self._accounts = MemoryAccountStore()

    @property
    def location(self) -> MemoryLocationStore:
        """The location service."""
        return self._location

    @property
    def accounts(self) -> MemoryAccountStore:
        """The digest accounts."""
        return self._accounts

    def close(self) -> None:
        """Nothing to release."""
