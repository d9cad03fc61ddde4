"""callscript: a SIP proxy whose users program their own calls in sandboxed Python."""

from callscript.errors import CallscriptError, ConfigError, ScriptError, SipError, TransportError
from callscript.sip.address import Address
from callscript.sip.errors import ParseError
from callscript.sip.message import Message, Request, Response, parse_message
from callscript.sip.uri import URI
from callscript.sip.via import Via

__version__ = "0.1.0"

__all__ = [
    "URI",
    "Address",
    "CallscriptError",
    "ConfigError",
    "Message",
    "ParseError",
    "Request",
    "Response",
    "ScriptError",
    "SipError",
    "TransportError",
    "Via",
    "parse_message",
]
