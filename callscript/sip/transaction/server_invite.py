"""INVITE server transaction: RFC 3261 §17.2.1 with the RFC 6026 §7.1 Accepted state.

Theory of operation
-------------------
States: Proceeding -> Completed -> Confirmed -> Terminated, or
Proceeding -> Accepted -> Terminated.

- Proceeding: the INVITE created the transaction and went up to the TU. The
  100 (Trying) is the TU's to send: a proxy sends it at once (§16.2), and
  §17.2.1 lets the transaction leave it to a TU that answers within 200 ms.
  Provisionals from the TU go out; a retransmitted INVITE gets the latest one
  again.
- Completed: the TU sent a 300-699 final. Timer G retransmits it on an
  unreliable transport (T1 doubling, capped at T2); a retransmitted INVITE
  gets it again; Timer H (64*T1) gives up waiting for the ACK
  (``AckTimedOut``).
- Confirmed: the ACK arrived and is absorbed. Timer I (T4 unreliable, 0
  reliable) absorbs ACK retransmissions.
- Accepted (RFC 6026): the TU sent a 2xx. Retransmitted INVITEs are absorbed,
  more 2xx from the TU (its own retransmissions, other forks' answers) go
  out, and ACKs go up to the TU (with key ``None``) until Timer L (64*T1).
- Transport error while something may still need sending:
  ``TransportFailed`` (RFC 3261 §17.2.4) and Terminated.

Every network input has an entry in every live state. A TU action that the
table lacks (a provisional after a final, say) raises ``LocalProtocolError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType

from callscript.sip.events import AckTimedOut, Peer, RequestReceived, TransportFailed
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerName
from callscript.sip.transaction.common import Runtime, Transaction, status_class


class State(enum.Enum):
    """RFC 3261 Figure 7 states, plus Accepted (RFC 6026 Figure 5)."""

    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to an INVITE server transaction."""

    REQUEST = "INVITE retransmission received"
    ACK = "ACK received"
    SEND_PROVISIONAL = "1xx from TU"
    SEND_SUCCESS = "2xx from TU"
    SEND_FAILURE = "300-699 from TU"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_L = "Timer L"
    TRANSPORT_ERROR = "transport error"


_BY_CLASS = MappingProxyType(
    {1: Input.SEND_PROVISIONAL, 2: Input.SEND_SUCCESS, 3: Input.SEND_FAILURE}
)
_TIMERS = MappingProxyType(
    {
        TimerName.G: Input.TIMER_G,
        TimerName.H: Input.TIMER_H,
        TimerName.I: Input.TIMER_I,
        TimerName.L: Input.TIMER_L,
    }
)

Action = Callable[["ServerInvite", float, "Request | Response | None"], None]


class ServerInvite(Transaction):
    """The server side of one INVITE (created by ``TransactionLayer.handle_request``).

    Attributes:
        state: the current :class:`State`.
        provisional: the latest provisional response sent, if any.
        final: the first final response sent, if any.
    """

    kind = "INVITE server"

    def __init__(self, key: str, request: Request, source: Peer, runtime: Runtime) -> None:
        super().__init__(key, request, source, runtime)
        self.state = State.PROCEEDING
        self.provisional: Response | None = None
        self.final: Response | None = None
        self._source = source
        self._interval = self._config.t1

    @property
    def final_sent(self) -> bool:
        """Whether a final response went out."""
        return self.final is not None

    # -- inputs -----------------------------------------------------------------

    def receive(self, request: Request, source: Peer, *, now: float) -> None:
        """A retransmitted INVITE or an ACK matched this transaction (RFC 3261 §17.2.3)."""
        self._source = source
        self.handle(Input.ACK if request.method == "ACK" else Input.REQUEST, now, request)

    def respond(self, response: Response, *, now: float) -> None:
        """The TU sends ``response`` in this transaction."""
        self.handle(_BY_CLASS[status_class(response.status)], now, response)

    def fire(self, name: TimerName, *, now: float) -> None:
        self.handle(_TIMERS[name], now, None)

    def transport_error(self, *, now: float) -> None:
        self.handle(Input.TRANSPORT_ERROR, now, None)

    def handle(self, event: Input, now: float, message: Request | Response | None) -> None:
        """Run the transition for ``event`` in the current state (missing: LocalProtocolError)."""
        self._step(_TABLE, event, now, message)

    # -- actions ------------------------------------------------------------------

    def _absorb(self, now: float, message: Request | Response | None) -> None:
        pass

    def _send_provisional(self, now: float, message: Request | Response | None) -> None:
        assert isinstance(message, Response)
        self.provisional = message
        self._send(message)

    def _resend_provisional(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §17.2.1: a retransmitted INVITE in Proceeding gets the latest provisional again.
        if self.provisional is not None:
            self._send(self.provisional)

    def _send_failure(self, now: float, message: Request | Response | None) -> None:
        assert isinstance(message, Response)
        self.final = message
        self._send(message)
        # RFC 3261 §17.2.1: Timer G from T1 (unreliable only), Timer H waits 64*T1 for the ACK.
        if not self.reliable:
            self._arm(TimerName.G, now, self._interval)
        self._arm(TimerName.H, now, self._config.timeout)

    def _resend_final(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §17.2.1: a retransmitted INVITE in Completed gets the final response again.
        assert self.final is not None
        self._send(self.final)

    def _retransmit_final(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §17.2.1: on Timer G resend the final, doubling the interval up to T2.
        self._resend_final(now, message)
        self._interval = min(2 * self._interval, self._config.t2)
        self._arm(TimerName.G, now, self._interval)

    def _ack_timed_out(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §17.2.1: Timer H in Completed: the ACK never came; tell the TU.
        self._cancel(TimerName.G)
        self._emit(AckTimedOut(self.key))

    def _confirm(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §17.2.1: the ACK stops G and H; Timer I absorbs ACK retransmissions.
        self._cancel(TimerName.G, TimerName.H)
        wait = self._config.wait(TimerName.I, reliable=self.reliable)
        if wait:
            self._arm(TimerName.I, now, wait)
        else:
            self.handle(Input.TIMER_I, now, None)

    def _accept(self, now: float, message: Request | Response | None) -> None:
        # RFC 6026 §7.1: a 2xx moves to Accepted for Timer L (64*T1); the TU retransmits 2xx itself.
        assert isinstance(message, Response)
        self.final = message
        self._send(message)
        self._arm(TimerName.L, now, self._config.timeout)

    def _send_success(self, now: float, message: Request | Response | None) -> None:
        # RFC 6026 §7.1: a 2xx from the TU in Accepted goes to the transport.
        assert isinstance(message, Response)
        self._send(message)

    def _forward_success(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §16.7 step 5: after a final response a proxy still forwards any 2xx to INVITE.
        assert isinstance(message, Response)
        self._send(message)

    def _ack_to_tu(self, now: float, message: Request | Response | None) -> None:
        # RFC 6026 §7.1: an ACK in Accepted goes to the TU, outside the transaction (key None).
        assert isinstance(message, Request)
        self._emit(RequestReceived(None, message, self._source))

    def _transport_failed(self, now: float, message: Request | Response | None) -> None:
        # RFC 3261 §17.2.4: the response could not be delivered; tell the TU and terminate.
        self._emit(TransportFailed(self.key))


S, In = State, Input
_TABLE: Mapping[tuple[State, Input], tuple[State, Action]] = MappingProxyType(
    {
        (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, ServerInvite._resend_provisional),
        (S.PROCEEDING, In.ACK): (S.PROCEEDING, ServerInvite._absorb),
        (S.PROCEEDING, In.SEND_PROVISIONAL): (S.PROCEEDING, ServerInvite._send_provisional),
        (S.PROCEEDING, In.SEND_SUCCESS): (S.ACCEPTED, ServerInvite._accept),
        (S.PROCEEDING, In.SEND_FAILURE): (S.COMPLETED, ServerInvite._send_failure),
        (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, ServerInvite._transport_failed),
        (S.COMPLETED, In.REQUEST): (S.COMPLETED, ServerInvite._resend_final),
        (S.COMPLETED, In.ACK): (S.CONFIRMED, ServerInvite._confirm),
        (S.COMPLETED, In.SEND_SUCCESS): (S.COMPLETED, ServerInvite._forward_success),
        (S.COMPLETED, In.TIMER_G): (S.COMPLETED, ServerInvite._retransmit_final),
        (S.COMPLETED, In.TIMER_H): (S.TERMINATED, ServerInvite._ack_timed_out),
        (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, ServerInvite._transport_failed),
        (S.CONFIRMED, In.REQUEST): (S.CONFIRMED, ServerInvite._absorb),
        (S.CONFIRMED, In.ACK): (S.CONFIRMED, ServerInvite._absorb),
        (S.CONFIRMED, In.SEND_SUCCESS): (S.CONFIRMED, ServerInvite._forward_success),
        (S.CONFIRMED, In.TIMER_I): (S.TERMINATED, ServerInvite._absorb),
        (S.CONFIRMED, In.TRANSPORT_ERROR): (S.CONFIRMED, ServerInvite._absorb),
        # RFC 6026 §7.1: retransmitted INVITEs in Accepted are absorbed, not passed up.
        (S.ACCEPTED, In.REQUEST): (S.ACCEPTED, ServerInvite._absorb),
        (S.ACCEPTED, In.ACK): (S.ACCEPTED, ServerInvite._ack_to_tu),
        (S.ACCEPTED, In.SEND_SUCCESS): (S.ACCEPTED, ServerInvite._send_success),
        (S.ACCEPTED, In.TIMER_L): (S.TERMINATED, ServerInvite._absorb),
        (S.ACCEPTED, In.TRANSPORT_ERROR): (S.TERMINATED, ServerInvite._transport_failed),
    }
)
del S, In
