"""What the four transaction state machines share (RFC 3261 §17).

A machine never touches a socket or a clock. It talks to a :class:`Runtime`
that the :class:`~callscript.sip.transaction.layer.TransactionLayer` owns: the
runtime queues the messages to send and the events for the TU, keeps every
timer of every transaction in one heap, and tells the layer when a transaction
has terminated so that it can be forgotten.

Timers are armed with an absolute deadline. Each arming gets a fresh sequence
number that the machine remembers in :attr:`Transaction.timers`; a heap entry
whose number is no longer there is stale (cancelled, re-armed, or its
transaction ended) and is skipped when it reaches the top (lazy deletion).
"""

from __future__ import annotations

import abc
import heapq
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import Outgoing, Peer, TransactionEvent, TransactionTerminated
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerConfig, TimerName

# Heap entries: (deadline, sequence number, transaction, timer). The sequence
# number is unique, so tuples never compare the transactions themselves.
HeapEntry = tuple[float, int, "Transaction", TimerName]


class Runtime:
    """Outputs and timers shared by every transaction of one layer."""

    def __init__(self, config: TimerConfig, on_end: Callable[[Transaction], None]) -> None:
        self.config = config
        self.outbox: list[Outgoing] = []
        self.events: deque[TransactionEvent] = deque()
        self.heap: list[HeapEntry] = []
        self._seq = 0
        self._on_end = on_end

    def send(self, message: Request | Response, peer: Peer) -> None:
        """Queue ``message`` for ``peer``."""
        self.outbox.append(Outgoing(message, peer))

    def emit(self, event: TransactionEvent) -> None:
        """Queue an event for the TU."""
        self.events.append(event)

    def arm(self, txn: Transaction, name: TimerName, at: float) -> None:
        """Start (or restart) timer ``name`` of ``txn`` to fire at ``at``."""
        self._seq += 1
        txn.timers[name] = self._seq
        heapq.heappush(self.heap, (at, self._seq, txn, name))

    def ended(self, txn: Transaction) -> None:
        """``txn`` reached Terminated: drop its timers, tell the TU and the layer."""
        txn.timers.clear()
        self.emit(TransactionTerminated(txn.key))
        self._on_end(txn)

    @staticmethod
    def live(entry: HeapEntry) -> bool:
        """Whether a heap entry is still the armed instance of its timer."""
        _, seq, txn, name = entry
        return txn.timers.get(name) == seq

    def compact(self, live_transactions: int) -> None:
        """Drop stale heap entries once they outnumber the live ones by far.

        A transaction has at most three timers armed at once (A+B, E+F, G+H),
        so a heap much larger than that is mostly stale; rebuilding it keeps
        memory bounded under load whatever the order of deadlines.
        """
        if len(self.heap) > 64 + 8 * live_transactions:
            self.heap = [entry for entry in self.heap if self.live(entry)]
            heapq.heapify(self.heap)


class Transaction(abc.ABC):
    """Base of the four machines: identity, request, peer and armed timers.

    Attributes:
        key: the transaction key (see :mod:`~callscript.sip.transaction.matching`).
        request: the request that created the transaction.
        peer: where requests go (client) or where the request came from and
            responses go (server).
        timers: armed timers, name to the sequence number of their heap entry.
        terminated: set once the machine reached its Terminated state.
    """

    def __init__(self, key: str, request: Request, peer: Peer, runtime: Runtime) -> None:
        self.key = key
        self.request = request
        self.peer = peer
        self.timers: dict[TimerName, int] = {}
        self.terminated = False
        self._runtime = runtime
        self._config = runtime.config

    @property
    def reliable(self) -> bool:
        """True when the transport is a stream (TCP, TLS)."""
        return self.peer.reliable

    def _step(
        self, table: Mapping[tuple[Any, Any], tuple[Any, Any]], event: Any, now: float, arg: object
    ) -> None:
        """Run the transition of ``table`` for ``event`` in the current state (STYLE §3).

        Raises:
            LocalProtocolError: the table has no such transition.
        """
        state = self.state
        try:
            next_state, action = table[(state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"{self.kind} transaction: {event.value} in {state.value}"
            ) from None
        self.state = next_state
        action(self, now, arg)
        if next_state.name == "TERMINATED":
            self._end()

    # What the machine is, for error messages ("INVITE client"...), and its current state.
    kind = "SIP"
    state: Any

    @abc.abstractmethod
    def fire(self, name: TimerName, *, now: float) -> None:
        """Timer ``name`` expired (the layer already forgot its heap entry)."""

    @abc.abstractmethod
    def transport_error(self, *, now: float) -> None:
        """The transport could not deliver a message of this transaction."""

    # -- helpers for the actions --------------------------------------------------

    def _arm(self, name: TimerName, now: float, duration: float) -> None:
        self._runtime.arm(self, name, now + duration)

    def _cancel(self, *names: TimerName) -> None:
        for name in names:
            self.timers.pop(name, None)

    def _send(self, message: Request | Response) -> None:
        self._runtime.send(message, self.peer)

    def _emit(self, event: TransactionEvent) -> None:
        self._runtime.emit(event)

    def _end(self) -> None:
        self.terminated = True
        self._runtime.ended(self)


def status_class(status: int) -> int:
    """1 for provisional, 2 for success, 3 for any final response from 300 to 699."""
    if status < 200:
        return 1
    return 2 if status < 300 else 3
