"""callscript: a SIP proxy whose users program their own calls in sandboxed Python."""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import TYPE_CHECKING

from callscript.errors import CallscriptError, ConfigError, ScriptError, SipError, TransportError
from callscript.sip.address import Address
from callscript.sip.errors import ParseError
from callscript.sip.message import Message, Request, Response, parse_message
from callscript.sip.uri import URI
from callscript.sip.via import Via

if TYPE_CHECKING:
    from callscript.agent import UserAgent
    from callscript.call import Call, IncomingCall
    from callscript.sip.dialog import Dialog, DialogId
    from callscript.stack import Stack
    from callscript.transaction import (
        ClientTransaction,
        RequestFailed,
        ServerTransaction,
        Transaction,
    )

__version__ = "0.1.0"

# The asyncio library is imported on first use: `import callscript.sip...` (sandbox
# workers, the proxy core) should not pay for asyncio, sockets and dnspython.
_LAZY = MappingProxyType(
    {
        "UserAgent": "callscript.agent",
        "Call": "callscript.call",
        "IncomingCall": "callscript.call",
        "Dialog": "callscript.sip.dialog",
        "DialogId": "callscript.sip.dialog",
        "Stack": "callscript.stack",
        "Transaction": "callscript.transaction",
        "ClientTransaction": "callscript.transaction",
        "ServerTransaction": "callscript.transaction",
        "RequestFailed": "callscript.transaction",
    }
)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'callscript' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "URI",
    "Address",
    "Call",
    "CallscriptError",
    "ClientTransaction",
    "ConfigError",
    "Dialog",
    "DialogId",
    "IncomingCall",
    "Message",
    "ParseError",
    "Request",
    "RequestFailed",
    "Response",
    "ScriptError",
    "ServerTransaction",
    "SipError",
    "Stack",
    "Transaction",
    "TransportError",
    "UserAgent",
    "Via",
    "parse_message",
]
