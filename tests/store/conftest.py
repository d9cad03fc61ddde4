"""Fixtures: every behaviour test runs against the memory store and a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript.store import AccountStore, LocationStore, MemoryStore, SqliteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store: in memory, or a SQLite database file in tmp_path."""
    opened: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "cs.db")
    yield opened
    opened.close()


@pytest.fixture
def location(store: Store) -> LocationStore:
    """The location service of :func:`store`."""
    return store.location


@pytest.fixture
def accounts(store: Store) -> AccountStore:
    """The accounts of :func:`store`."""
    return store.accounts
