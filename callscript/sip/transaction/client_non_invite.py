"""Non-INVITE client transaction (RFC 3261 §17.1.2).

Theory of operation
-------------------
States: Trying -> Proceeding -> Completed -> Terminated.

- Trying: the request went out when the transaction started. On an
  unreliable transport Timer E retransmits it, from T1 doubling up to T2;
  Timer F (64*T1) gives up with ``TransactionTimedOut``.
- Proceeding: a provisional went up. Retransmissions go on, but every Timer E
  from now on is T2. Timer F still runs.
- Completed: the final response (200-699) went up once. Timer K (T4 on an
  unreliable transport, 0 on a reliable one) absorbs its retransmissions.
- Transport error before the final response: ``TransportFailed`` and
  Terminated.

Every network input has an entry in every live state; a missing entry means
our own code misused the machine.
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
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerName
from callscript.sip.transaction.common import Runtime, Transaction, status_class


class State(enum.Enum):
    """RFC 3261 Figure 6 states."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to a non-INVITE client transaction."""

    PROVISIONAL = "1xx received"
    FINAL = "200-699 received"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TRANSPORT_ERROR = "transport error"


_TIMERS = MappingProxyType(
    {TimerName.E: Input.TIMER_E, TimerName.F: Input.TIMER_F, TimerName.K: Input.TIMER_K}
)

Action = Callable[["ClientNonInvite", float, "Response | None"], None]


class ClientNonInvite(Transaction):
    """The client side of one non-INVITE request (``TransactionLayer.send_request``).

    Attributes:
        state: the current :class:`State`.
    """

    kind = "non-INVITE client"

    def __init__(
        self, key: str, request: Request, peer: Peer, runtime: Runtime, *, now: float
    ) -> None:
        super().__init__(key, request, peer, runtime)
        self.state = State.TRYING
        self._source = peer
        self._interval = self._config.t1
        self._send(request)
        # RFC 3261 §17.1.2.2: Timer E from T1 (unreliable only), Timer F at 64*T1.
        if not self.reliable:
            self._arm(TimerName.E, now, self._interval)
        self._arm(TimerName.F, now, self._config.timeout)

    # -- inputs -----------------------------------------------------------------

    def receive(self, response: Response, source: Peer, *, now: float) -> None:
        """A response matched this transaction (RFC 3261 §17.1.3)."""
        self._source = source
        event = Input.PROVISIONAL if status_class(response.status) == 1 else Input.FINAL
        self.handle(event, now, response)

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
        # RFC 3261 §17.1.2.2: Timer E doubles up to T2 in Trying, and is T2 in Proceeding.
        self._send(self.request)
        if self.state is State.PROCEEDING:
            self._interval = self._config.t2
        else:
            self._interval = min(2 * self._interval, self._config.t2)
        self._arm(TimerName.E, now, self._interval)

    def _timed_out(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.2.2: Timer F in Trying or Proceeding reports a timeout to the TU.
        self._cancel(TimerName.E)
        self._emit(TransactionTimedOut(self.key))

    def _pass_up(self, now: float, response: Response | None) -> None:
        assert response is not None
        self._emit(ResponseReceived(self.key, response, self._source))

    def _complete(self, now: float, response: Response | None) -> None:
        self._cancel(TimerName.E, TimerName.F)
        self._pass_up(now, response)
        # RFC 3261 §17.1.2.2: Timer K absorbs retransmitted finals (T4 unreliable, 0 reliable).
        wait = self._config.wait(TimerName.K, reliable=self.reliable)
        if wait:
            self._arm(TimerName.K, now, wait)
        else:
            self.handle(Input.TIMER_K, now, None)

    def _transport_failed(self, now: float, response: Response | None) -> None:
        # RFC 3261 §17.1.4: a transport failure is reported to the TU and ends the transaction.
        self._emit(TransportFailed(self.key))


S, In = State, Input
_TABLE: Mapping[tuple[State, Input], tuple[State, Action]] = MappingProxyType(
    {
        (S.TRYING, In.TIMER_E): (S.TRYING, ClientNonInvite._retransmit),
        (S.TRYING, In.TIMER_F): (S.TERMINATED, ClientNonInvite._timed_out),
        (S.TRYING, In.PROVISIONAL): (S.PROCEEDING, ClientNonInvite._pass_up),
        (S.TRYING, In.FINAL): (S.COMPLETED, ClientNonInvite._complete),
        (S.TRYING, In.TRANSPORT_ERROR): (S.TERMINATED, ClientNonInvite._transport_failed),
        (S.PROCEEDING, In.TIMER_E): (S.PROCEEDING, ClientNonInvite._retransmit),
        (S.PROCEEDING, In.TIMER_F): (S.TERMINATED, ClientNonInvite._timed_out),
        (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, ClientNonInvite._pass_up),
        (S.PROCEEDING, In.FINAL): (S.COMPLETED, ClientNonInvite._complete),
        (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, ClientNonInvite._transport_failed),
        (S.COMPLETED, In.PROVISIONAL): (S.COMPLETED, ClientNonInvite._absorb),
        (S.COMPLETED, In.FINAL): (S.COMPLETED, ClientNonInvite._absorb),
        (S.COMPLETED, In.TIMER_K): (S.TERMINATED, ClientNonInvite._absorb),
        # Nothing is sent in Completed, so a late transport error changes nothing.
        (S.COMPLETED, In.TRANSPORT_ERROR): (S.COMPLETED, ClientNonInvite._absorb),
    }
)
del S, In
