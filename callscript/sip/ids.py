"""Where branches, tags, Call-IDs and nonces come from (RFC 3261 §8.1.1.7, §19.3, §8.1.1.4).

The core never calls ``random`` itself: it is handed an :class:`IdSource`.
:class:`RandomIds` is the production source; :class:`CountingIds` gives
predictable values for tests.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from callscript.sip.via import MAGIC_COOKIE


class IdSource(Protocol):
    """Fresh identifiers for the protocol."""

    def branch(self) -> str:
        """A Via branch, unique in space and time, starting with ``z9hG4bK``."""
        ...

    def tag(self) -> str:
        """A From/To tag (RFC 3261 §19.3: at least 32 bits of randomness)."""
        ...

    def call_id(self) -> str:
        """A Call-ID local part, globally unique."""
        ...

    def token(self, nbytes: int = 16) -> str:
        """An unguessable token (nonces, cnonces), hex-encoded."""
        ...


class RandomIds:
    """Identifiers from the operating system's secure random source."""

    def branch(self) -> str:
        # RFC 3261 §8.1.1.7: the branch begins with the magic cookie z9hG4bK.
        return MAGIC_COOKIE + secrets.token_hex(10)

    def tag(self) -> str:
        return secrets.token_hex(6)

    def call_id(self) -> str:
        return secrets.token_hex(12)

    def token(self, nbytes: int = 16) -> str:
        return secrets.token_hex(nbytes)


class CountingIds:
    """Predictable identifiers for tests: ``z9hG4bK-1``, ``tag-2``, ``call-3``..."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._n = 0

    def _next(self, kind: str) -> str:
        self._n += 1
        return f"{self._prefix}{kind}{self._n}"

    def branch(self) -> str:
        return MAGIC_COOKIE + self._next("-b")

    def tag(self) -> str:
        return self._next("tag")

    def call_id(self) -> str:
        return self._next("call")

    def token(self, nbytes: int = 16) -> str:
        return self._next("tok").ljust(nbytes, "0")
