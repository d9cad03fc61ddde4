"""INVITE client transaction: RFC 3261 §17.1.1 with the RFC 6026 §7.2 Accepted state.

Theory of operation
-------------------
States: Calling -> Proceeding -> Completed | Accepted -> Terminated.

- Calling: the INVITE went out when the transaction started. On an
  unreliable transport Timer A retransmits it, starting at T1 and doubling
  each time with no cap; Timer B (64*T1) gives up: the TU learns
  ``TransactionTimedOut`` and no ACK is sent.
- Proceeding: a provisional response stops retransmissions and Timer B (the
  TU's Timer C guards a ringing branch from now on). Provisionals go up.
- Completed: a 300-699 response goes up once; the transaction builds the ACK
  itself (§17.1.1.3) and sends it again for every retransmission of that
  final response, until Timer D (at least 32 s unreliable, 0 reliable).
- Accepted (RFC 6026): a 2xx goes up, and so does every later 2xx (a
  retransmission, or the answer of another fork), until Timer M (64*T1).
  The ACK for a 2xx is the TU's job, not the transaction's.
- Transport error: the TU learns ``TransportFailed`` while no final response
  has arrived; the transaction terminates.

Inputs are the class of a received response, the timers, and transport
errors. Every network input has an entry in every live state (absorbing what
the RFC ignores); a missing entry means our own code misused the machine.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType

from callscript.sip.events import (
    Peer,
    ResponseReceived,
    TransactionTimedOut,
    TransportFailed,
)
from callscript.sip.headers import CSeq
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerName
from callscript.sip.transaction.common import Runtime, Transaction, status_class


class State(enum.Enum):
    """RFC 3261 Figure 5 states, plus Accepted (RFC 6026 Figure 3)."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to an INVITE client transaction."""

    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"


_BY_CLASS = MappingProxyType({1: Input.PROVISIONAL, 2: Input.SUCCESS, 3: Input.FAILURE})
_TIMERS = MappingProxyType(
    {
        TimerName.A: Input.TIMER_A,
        TimerName.B: Input.TIMER_B,
        TimerName.D: Input.TIMER_D,
        TimerName.M: Input.TIMER_M,
    }
)

Action = Callable[["ClientInvite", float, "Response | None"], None]


class ClientInvite(Transaction):
    """The client side of one INVITE (created by ``TransactionLayer.send_request``).

    Attributes:
        state: the current :class:`State`.
        cancel_wanted: the TU asked for a CANCEL before any provisional arrived
            (RFC 3261 §9.1); the layer sends it on the first provisional.
        cancel_key: key of the CANCEL client transaction once it was started.
        ack: the ACK built for a 300-699 response, ``None`` before one arrives.
    """

    kind = "INVITE client"

    def __init__(
        self, key: str, request: Request, peer: Peer, runtime: Runtime, *, now: float
    ) -> None:
        super().__init__(key, request, peer, runtime)
        self.state = State.CALLING
        self.cancel_wanted = False
        self.cancel_key: str | None = None
        self.ack: Request | None = None
        self._source = peer
        self._interval = self._config.t1
        self._send(request)
        # RFC 3261 §17.1.1.2: Timer A resends from T1 (unreliable only); Timer B ends it at 64*T1.
        if not self.reliable:
            self._arm(TimerName.A, now, self._interval)
        self._arm(TimerName.B, now, self._config.timeout)

    # -- inputs -----------------------------------------------------------------

    def receive(self, response: Response, source: Peer, *, now: float) -> None:
        """A response matched this transaction (RFC 3261 §17.1.3)."""
        self._source = source
        self.handle(_BY_CLASS[status_class(response.status)], now, response)

    def fire(self, name: TimerName, *, now: float) -> None:
        self.handle(_TIMERS[name], now, None)

    def transport_error(self, *, now: float) -> None:
        self.handle(Input.TRANSPORT_ERROR, now, None)

    def handle(self, event: Input, now: float, response: Response | None) -> None:
        """Run the transition for ``event`` in the current state (missing: LocalProtocolError)."""
        self._step(_TABLE, event, now, response)

    # -- actions ------------------------------------------------------------------

    def _absorb(self, now: float, response: Response | None) -> None:
        pass

    def _retransmit(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.1.2: on Timer A, resend and double the interval (no cap for INVITE).
        self._send(self.request)
        self._interval *= 2
        self._arm(TimerName.A, now, self._interval)

    def _timed_out(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.1.2: Timer B in Calling tells the TU of the timeout; no ACK.
        self._cancel(TimerName.A)
        self._emit(TransactionTimedOut(self.key))

    def _pass_up(self, now: float, response: Response | None) -> None:
        assert response is not None
        self._emit(ResponseReceived(self.key, response, self._source))

    def _proceed(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.1.2: a provisional stops retransmissions and Timer B (only Calling has it).
        self._cancel(TimerName.A, TimerName.B)
        self._pass_up(now, response)

    def _accept(self, now: float, response: Response | None) -> None:
        # RFC 6026 §7.2: a 2xx goes up and moves to Accepted for Timer M (64*T1); the TU ACKs it.
        self._cancel(TimerName.A, TimerName.B)
        self._pass_up(now, response)
        self._arm(TimerName.M, now, self._config.timeout)

    def _complete(self, now: float, response: Response | None) -> None:
        assert response is not None
        self._cancel(TimerName.A, TimerName.B)
        self._pass_up(now, response)
        self.ack = build_ack(self.request, response)
        self._send(self.ack)
        # RFC 3261 §17.1.1.2: Timer D absorbs retransmitted finals (>= 32 s unreliable, 0 reliable).
        wait = self._config.wait(TimerName.D, reliable=self.reliable)
        if wait:
            self._arm(TimerName.D, now, wait)
        else:
            self.handle(Input.TIMER_D, now, None)

    def _resend_ack(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.1.2: each retransmitted final in Completed is answered by the ACK again.
        assert self.ack is not None
        self._send(self.ack)

    def _transport_failed(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.4: a transport failure is reported to the TU and ends the transaction.
        self._emit(TransportFailed(self.key))


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a 300-699 response to ``invite`` (RFC 3261 §17.1.1.3)."""
    # RFC 3261 §17.1.1.3: Request-URI, Call-ID, From and CSeq number of the INVITE, To of the
    # response (with its tag), one Via equal to the INVITE's top Via, the INVITE's Route headers.
    ack = Request(
        "ACK",
        invite.uri,
        [
            ("Via", invite.top_via),
            ("Max-Forwards", 70),
            ("From", invite["From"]),
            ("To", response["To"]),
            ("Call-ID", invite["Call-ID"]),
            ("CSeq", CSeq(invite.cseq.number, "ACK")),
        ],
    )
    routes = invite.get_all("Route")
    if routes:
        ack["Route"] = routes
    return ack


S, In = State, Input
_TABLE: Mapping[tuple[State, Input], tuple[State, Action]] = MappingProxyType(
    {
        (S.CALLING, In.TIMER_A): (S.CALLING, ClientInvite._retransmit),
        (S.CALLING, In.TIMER_B): (S.TERMINATED, ClientInvite._timed_out),
        (S.CALLING, In.PROVISIONAL): (S.PROCEEDING, ClientInvite._proceed),
        (S.CALLING, In.SUCCESS): (S.ACCEPTED, ClientInvite._accept),
        (S.CALLING, In.FAILURE): (S.COMPLETED, ClientInvite._complete),
        (S.CALLING, In.TRANSPORT_ERROR): (S.TERMINATED, ClientInvite._transport_failed),
        (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, ClientInvite._pass_up),
        (S.PROCEEDING, In.SUCCESS): (S.ACCEPTED, ClientInvite._accept),
        (S.PROCEEDING, In.FAILURE): (S.COMPLETED, ClientInvite._complete),
        (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, ClientInvite._transport_failed),
        (S.COMPLETED, In.PROVISIONAL): (S.COMPLETED, ClientInvite._absorb),
        (S.COMPLETED, In.SUCCESS): (S.COMPLETED, ClientInvite._absorb),
        (S.COMPLETED, In.FAILURE): (S.COMPLETED, ClientInvite._resend_ack),
        (S.COMPLETED, In.TIMER_D): (S.TERMINATED, ClientInvite._absorb),
        # DEVIATION RFC 3261 §17.1.4: after its final response the TU is not told that an ACK
        # could not be sent: it already has the one final response a transaction may give it.
        (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, ClientInvite._absorb),
        (S.ACCEPTED, In.PROVISIONAL): (S.ACCEPTED, ClientInvite._absorb),
        # RFC 6026 §7.2: every 2xx received in Accepted goes to the TU.
        (S.ACCEPTED, In.SUCCESS): (S.ACCEPTED, ClientInvite._pass_up),
        (S.ACCEPTED, In.FAILURE): (S.ACCEPTED, ClientInvite._absorb),
        (S.ACCEPTED, In.TIMER_M): (S.TERMINATED, ClientInvite._absorb),
        (S.ACCEPTED, In.TRANSPORT_ERROR): (S.ACCEPTED, ClientInvite._absorb),
    }
)
del S, In
