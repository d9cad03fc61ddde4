"""Non-INVITE server transaction (RFC 3261 §17.2.2).

Theory of operation
-------------------
States: Trying -> Proceeding -> Completed -> Terminated.

- Trying: the request created the transaction and went up to the TU.
  Retransmissions of it are absorbed (there is nothing to resend yet).
- Proceeding: the TU sent a provisional; a retransmitted request gets the
  latest one again.
- Completed: the TU sent the final response (200-699); a retransmitted
  request gets it again. Later finals from the TU are discarded, as §17.2.2
  requires. Timer J (64*T1 unreliable, 0 reliable) absorbs retransmissions.
- Transport error while a response may still be needed:
  ``TransportFailed`` (RFC 3261 §17.2.4) and Terminated.

Every network input has an entry in every live state. A TU action that the
table lacks (a provisional after the final) raises ``LocalProtocolError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import Peer, TransportFailed
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerName
from callscript.sip.transaction.common import Runtime, Transaction, status_class


class State(enum.Enum):
    """RFC 3261 Figure 8 states."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to a non-INVITE server transaction."""

    REQUEST = "request retransmission received"
    SEND_PROVISIONAL = "1xx from TU"
    SEND_FINAL = "200-699 from TU"
    TIMER_J = "Timer J"
    TRANSPORT_ERROR = "transport error"


Action = Callable[["ServerNonInvite", float, "Response | None"], None]


class ServerNonInvite(Transaction):
    """The server side of one non-INVITE request (``TransactionLayer.handle_request``).

    Attributes:
        state: the current :class:`State`.
        provisional: the latest provisional response sent, if any.
        final: the final response sent, if any.
    """

    kind = "non-INVITE server"

    def __init__(self, key: str, request: Request, source: Peer, runtime: Runtime) -> None:
        super().__init__(key, request, source, runtime)
        self.state = State.TRYING
        self.provisional: Response | None = None
        self.final: Response | None = None

    @property
    def final_sent(self) -> bool:
        """Whether a final response went out."""
        return self.final is not None

    # -- inputs -----------------------------------------------------------------

    def receive(self, request: Request, source: Peer, *, now: float) -> None:
        """A retransmission of the request matched this transaction (RFC 3261 §17.2.3)."""
        self.handle(Input.REQUEST, now, None)

    def respond(self, response: Response, *, now: float) -> None:
        """The TU sends ``response`` in this transaction."""
        event = Input.SEND_PROVISIONAL if status_class(response.status) == 1 else Input.SEND_FINAL
        self.handle(event, now, response)

    def fire(self, name: TimerName, *, now: float) -> None:
        if name is not TimerName.J:
            raise LocalProtocolError(f"non-INVITE server transaction has no Timer {name.value}")
        self.handle(Input.TIMER_J, now, None)

    def transport_error(self, *, now: float) -> None:
        self.handle(Input.TRANSPORT_ERROR, now, None)

    def handle(self, event: Input, now: float, response: Response | None) -> None:
        """Run the transition for ``event`` in the current state (missing: LocalProtocolError)."""
        self._step(_TABLE, event, now, response)

    # -- actions ------------------------------------------------------------------

    def _absorb(self, now: float, response: Response | None) -> None:
        pass

    def _send_provisional(self, now: float, response: Response | None) -> None:
        assert response is not None
        self.provisional = response
        self._send(response)

    def _resend_provisional(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.2.2: a retransmission in Proceeding gets the latest provisional again.
        assert self.provisional is not None
        self._send(self.provisional)

    def _send_final(self, now: float, response: Response | None) -> None:
        assert response is not None
        self.final = response
        self._send(response)
        # RFC 3261 §17.2.2: Timer J absorbs retransmissions (64*T1 unreliable, 0 reliable).
        wait = self._config.wait(TimerName.J, reliable=self.reliable)
        if wait:
            self._arm(TimerName.J, now, wait)
        else:
            self.handle(Input.TIMER_J, now, None)

    def _resend_final(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.2.2: a retransmission in Completed gets the final response again.
        assert self.final is not None
        self._send(self.final)

    def _transport_failed(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.2.4: the response could not be delivered; tell the TU and terminate.
        self._emit(TransportFailed(self.key))


S, In = State, Input
_TABLE: Mapping[tuple[State, Input], tuple[State, Action]] = MappingProxyType(
    {
        (S.TRYING, In.REQUEST): (S.TRYING, ServerNonInvite._absorb),
        (S.TRYING, In.SEND_PROVISIONAL): (S.PROCEEDING, ServerNonInvite._send_provisional),
        (S.TRYING, In.SEND_FINAL): (S.COMPLETED, ServerNonInvite._send_final),
        (S.TRYING, In.TRANSPORT_ERROR): (S.TERMINATED, ServerNonInvite._transport_failed),
        (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, ServerNonInvite._resend_provisional),
        (S.PROCEEDING, In.SEND_PROVISIONAL): (S.PROCEEDING, ServerNonInvite._send_provisional),
        (S.PROCEEDING, In.SEND_FINAL): (S.COMPLETED, ServerNonInvite._send_final),
        (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, ServerNonInvite._transport_failed),
        (S.COMPLETED, In.REQUEST): (S.COMPLETED, ServerNonInvite._resend_final),
        # RFC 3261 §17.2.2: other finals from the TU in Completed are discarded.
        (S.COMPLETED, In.SEND_FINAL): (S.COMPLETED, ServerNonInvite._absorb),
        (S.COMPLETED, In.TIMER_J): (S.TERMINATED, ServerNonInvite._absorb),
        (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, ServerNonInvite._transport_failed),
    }
)
del S, In
