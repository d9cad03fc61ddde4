"""The root of every error callscript raises on purpose.

CallscriptError
  SipError            protocol errors (callscript.sip.errors refines them)
  TransportError      sockets, connections, name resolution
  ScriptError         a user's or an admin's script failed to compile or run
  ConfigError         a configuration file or option is wrong
"""

from __future__ import annotations


class CallscriptError(Exception):
    """Root of the errors callscript raises on purpose."""


class SipError(CallscriptError):
    """A SIP protocol error."""


class TransportError(CallscriptError):
    """A socket, connection or resolution failure."""


class ScriptError(CallscriptError):
    """A script failed to compile or to run; carries ``file:line:col`` when known."""


class ConfigError(CallscriptError):
    """A configuration value is missing or wrong."""
