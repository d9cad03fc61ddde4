"""The SIP transaction layer, sans-I/O (RFC 3261 §17 with the RFC 6026 corrections).

:class:`TransactionLayer` holds every client and server transaction of one
element; the four state machines live in ``client_invite``,
``client_non_invite``, ``server_invite`` and ``server_non_invite``, the keys
in ``matching``.
"""

from __future__ import annotations

from callscript.sip.transaction.client_invite import build_ack
from callscript.sip.transaction.layer import TransactionLayer, build_cancel

__all__ = ["TransactionLayer", "build_ack", "build_cancel"]
