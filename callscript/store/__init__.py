"""Storage: location bindings and digest accounts behind Protocols.

``SqliteStore(path)`` is the default (one file, nothing else to run);
``MemoryStore()`` keeps the same behaviour in memory for unit tests. Code
that uses a store depends only on the Protocols in :mod:`callscript.store.base`.
"""

from __future__ import annotations

from callscript.store.base import (
    ROLES,
    Account,
    AccountExists,
    AccountNotFound,
    AccountStore,
    Binding,
    LocationStore,
    Role,
    Store,
    StoreError,
    compute_ha1s,
    supported_algorithms,
)
from callscript.store.memory import MemoryAccountStore, MemoryLocationStore, MemoryStore
from callscript.store.schema import SCHEMA_VERSION
from callscript.store.sqlite import SqliteLocationStore, SqliteStore
from callscript.store.sqlite_accounts import SqliteAccountStore

__all__ = [
    "ROLES",
    "SCHEMA_VERSION",
    "Account",
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "Binding",
    "LocationStore",
    "MemoryAccountStore",
    "MemoryLocationStore",
    "MemoryStore",
    "Role",
    "SqliteAccountStore",
    "SqliteLocationStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "compute_ha1s",
    "supported_algorithms",
]
