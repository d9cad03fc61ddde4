"""Fixtures for transaction-layer tests: a fake ``clock`` and an in-memory ``net``."""

from __future__ import annotations

import pytest
from netsim import FakeClock, Network


@pytest.fixture
def clock() -> FakeClock:
    """Time starts at 0.0 and moves only when a test (or the network) moves it."""
    return FakeClock()


@pytest.fixture
def net(clock: FakeClock) -> Network:
    """A lossless network on the fake clock (seed 0); tests add their nodes."""
    return Network(clock)
