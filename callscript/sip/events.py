"""Typed values that cross the boundary between the core and its adapters.

``Peer`` names where a message came from or goes to; the transaction layer's
events are past-tense facts the transaction user (proxy, UA) consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from callscript.sip.message import Request, Response

TRANSPORTS = ("UDP", "TCP", "TLS")


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address: ``transport`` (UDP, TCP, TLS), ``host`` (IP literal) and ``port``.

    ``connection`` is the id of the stream connection a message arrived on, so
    that responses go back over it (RFC 3261 §18.2.2); ``None`` for UDP or when
    any connection to the address will do.
    """

    transport: str
    host: str
    port: int
    connection: int | None = None

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {self.transport!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"bad port {self.port}")

    @property
    def reliable(self) -> bool:
        """True for stream transports (TCP, TLS): no retransmissions, zero wait timers."""
        return self.transport != "UDP"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for socket calls (IPv6 without brackets)."""
        return self.host.strip("[]"), self.port

    def without_connection(self) -> Peer:
        """The same address with no connection pinned."""
        return Peer(self.transport, self.host, self.port)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the core wants sent to ``peer``."""

    message: Request | Response
    peer: Peer


class TransactionEvent:
    """Base of the transaction layer's events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RequestReceived(TransactionEvent):
    """A new request created server transaction ``key`` (ACK for 2xx has no transaction: key ``None``)."""

    key: str | None
    request: Request
    source: Peer


@dataclass(frozen=True, slots=True)
class ResponseReceived(TransactionEvent):
    """Client transaction ``key`` got a response to pass up (``key`` None: a stray response)."""

    key: str | None
    response: Response
    source: Peer


@dataclass(frozen=True, slots=True)
class TransactionTimedOut(TransactionEvent):
    """Client transaction ``key`` got no final response in time (Timer B or F): act as if 408."""

    key: str


@dataclass(frozen=True, slots=True)
class TransportFailed(TransactionEvent):
    """Transaction ``key`` could not send (RFC 3261 §17.1.4, §17.2.4): act as if 503 (client)."""

    key: str


@dataclass(frozen=True, slots=True)
class AckTimedOut(TransactionEvent):
    """INVITE server transaction ``key`` never got the ACK for its non-2xx final (Timer H)."""

    key: str


@dataclass(frozen=True, slots=True)
class TransactionTerminated(TransactionEvent):
    """Transaction ``key`` ended and was forgotten."""

    key: str


@dataclass(frozen=True, slots=True)
class CancelSent(TransactionEvent):
    """The layer started CANCEL transaction ``cancel_key`` for INVITE client transaction ``key``.

    ``TransactionLayer.request_cancel`` defers the CANCEL until a provisional
    response arrives (RFC 3261 §9.1); this event says when it went out.
    """

    key: str
    cancel_key: str
