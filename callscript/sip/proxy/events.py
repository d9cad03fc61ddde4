"""What the proxy core tells the engine that steers it."""

from __future__ import annotations

from dataclasses import dataclass

from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI


class ProxyEvent:
    """Base of the proxy core's events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RoutingNeeded(ProxyEvent):
    """A new request passed validation (§16.3) and route preprocessing (§16.4).

    The engine answers it (``reply``/``respond``) or proxies it (``proxy``).
    ``in_dialog`` requests normally go to :func:`~callscript.sip.proxy.route.next_hop`.
    """

    ctx: str
    request: Request
    source: Peer
    in_dialog: bool


@dataclass(frozen=True, slots=True)
class ForwardNeeded(ProxyEvent):
    """A message to forward statelessly (ACK for 2xx, stray response) once ``next_hop`` resolves.

    The engine resolves the URI (RFC 3263) and calls ``send_stateless``.
    """

    message: Request | Response
    next_hop: URI


@dataclass(frozen=True, slots=True)
class ProxyCompleted(ProxyEvent):
    """A ``proxy`` call ended: ``status`` is 2xx when answered, else the best final status.

    ``response`` is what was (or would be) forwarded; ``forwarded`` says whether
    it already went to the caller. When it did not, the engine decides what
    follows (forward it, proxy elsewhere, answer itself).
    """

    ctx: str
    request: Request
    status: int
    response: Response
    forwarded: bool


@dataclass(frozen=True, slots=True)
class RequestCancelled(ProxyEvent):
    """The caller sent CANCEL for ``ctx`` (RFC 3261 §16.10); the engine stops deciding."""

    ctx: str


@dataclass(frozen=True, slots=True)
class ContextClosed(ProxyEvent):
    """Everything about ``ctx`` is over; the engine may forget it."""

    ctx: str
