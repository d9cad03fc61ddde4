"""The transaction layer: every transaction of one SIP element (RFC 3261 §17, RFC 6026).

Inputs are parsed messages from the network (the adapter already applied
RFC 3261 §18.2.1 to requests), TU actions, transport errors and
``handle_timers``; outputs are drained by the adapter after every input:
``messages_to_send()``, ``next_event()`` and ``next_deadline()``.

All timers of all transactions live in one heap with lazy deletion (see
:mod:`~callscript.sip.transaction.common`). A terminated transaction leaves
the matching maps at once; its request stays readable (``server_request``,
``client_request``) until the TU has taken its ``TransactionTerminated``
event, so events queued before it can still be acted on.
"""

from __future__ import annotations

import heapq

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import (
    CancelSent,
    Outgoing,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionTerminated,
)
from callscript.sip.headers import CSeq
from callscript.sip.message import Request, Response
from callscript.sip.timers import TimerConfig
from callscript.sip.transaction import client_invite
from callscript.sip.transaction.client_invite import ClientInvite
from callscript.sip.transaction.client_non_invite import ClientNonInvite
from callscript.sip.transaction.common import Runtime, Transaction
from callscript.sip.transaction.matching import (
    ack_keys,
    client_key,
    is_rfc3261_branch,
    response_key,
    server_key,
)
from callscript.sip.transaction.server_invite import ServerInvite
from callscript.sip.transaction.server_non_invite import ServerNonInvite
from callscript.sip.via import MAGIC_COOKIE

ClientTransaction = ClientInvite | ClientNonInvite
ServerTransaction = ServerInvite | ServerNonInvite


class TransactionLayer:
    """All client and server transactions of one element, sans-I/O.

    Args:
        timers: T1, T2, T4 and what derives from them (RFC 3261 Appendix A).
    """

    def __init__(self, *, timers: TimerConfig = TimerConfig()) -> None:  # noqa: B008 - frozen value
        self._config = timers
        self._runtime = Runtime(timers, self._forget)
        self._clients: dict[str, ClientTransaction] = {}
        self._servers: dict[str, ServerTransaction] = {}
        # Terminated, but their TransactionTerminated event is still queued.
        self._finished: dict[str, Transaction] = {}

    # -- network input -----------------------------------------------------------------

    def handle_request(self, request: Request, source: Peer, *, now: float) -> None:
        """A request arrived from ``source``.

        A retransmission goes to its server transaction; an ACK to the INVITE
        transaction it acknowledges, or to the TU (``RequestReceived`` with key
        ``None``) when there is none; any other request creates a server
        transaction and goes up as ``RequestReceived``.

        Raises:
            ParseError: the request lacks a header that matching needs (Via,
                CSeq; and To, From, Call-ID for RFC 2543 peers). Answer or drop it.
        """
        if request.method == "ACK":
            self._handle_ack(request, source, now)
            return
        key = server_key(request)
        txn = self._servers.get(key)
        if txn is not None:
            txn.receive(request, source, now=now)
            return
        if request.method == "INVITE":
            self._servers[key] = ServerInvite(key, request, source, self._runtime)
        else:
            self._servers[key] = ServerNonInvite(key, request, source, self._runtime)
        self._runtime.emit(RequestReceived(key, request, source))

    def _handle_ack(self, ack: Request, source: Peer, now: float) -> None:
        for key in ack_keys(ack):
            txn = self._servers.get(key)
            if isinstance(txn, ServerInvite) and _ack_matches(txn, ack):
                txn.receive(ack, source, now=now)
                return
        # RFC 3261 §17.2.3: an ACK matching no transaction (the ACK for a 2xx) goes to the TU.
        self._runtime.emit(RequestReceived(None, ack, source))

    def handle_response(self, response: Response, source: Peer, *, now: float) -> None:
        """A response arrived from ``source``.

        Raises:
            ParseError: the response has no readable top Via or CSeq; drop it.
        """
        key = response_key(response)
        txn = self._clients.get(key) if key is not None else None
        if txn is None:
            # RFC 3261 §18.1.2: a response matching no client transaction goes to the TU.
            self._runtime.emit(ResponseReceived(None, response, source))
            return
        txn.receive(response, source, now=now)
        if response.status >= 200:
            # The client transaction now only absorbs retransmissions: its request's parsed
            # values will not be read again (the TU got the response already queued).
            forget_parsed(txn.request)
        if isinstance(txn, ClientInvite) and txn.cancel_wanted:
            self._cancel_if_ready(txn, now)

    def handle_timers(self, *, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        heap = self._runtime.heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if Runtime.live(entry):
                _, _, txn, name = entry
                del txn.timers[name]
                txn.fire(name, now=now)

    def handle_transport_error(self, key: str, *, now: float) -> None:
        """Sending a message of transaction ``key`` failed (RFC 3261 §17.1.4, §17.2.4).

        An unknown or terminated key is ignored: the failure came too late to matter.
        """
        txn: Transaction | None = self._clients.get(key) or self._servers.get(key)
        if txn is not None:
            txn.transport_error(now=now)

    def terminate(self, key: str) -> None:
        """End transaction ``key`` now, silently: its TU gave up on it (RFC 3261 §9.1, no
        final response 64*T1 after a CANCEL). Its timers stop; ``TransactionTerminated`` follows."""
        txn: Transaction | None = self._clients.get(key) or self._servers.get(key)
        if txn is not None and not txn.terminated:
            txn.timers.clear()
            txn._end()

    # -- TU actions --------------------------------------------------------------------

    def send_request(self, request: Request, peer: Peer, *, now: float) -> str:
        """Start a client transaction for ``request`` towards ``peer``; return its key.

        The TU has put a fresh branch on the top Via. Do not change the request
        afterwards: retransmissions send the same object.

        Raises:
            LocalProtocolError: an ACK (never a transaction), a branch without
                the magic cookie, or a branch already in use.
        """
        if request.method == "ACK":
            raise LocalProtocolError("ACK is not a transaction: use send_stateless")
        branch = request.top_via.branch
        # RFC 3261 §8.1.1.7: the branch we send starts with the magic cookie z9hG4bK.
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError(f"the top Via branch must start with {MAGIC_COOKIE}")
        key = client_key(branch, request.method)
        if key in self._clients:
            raise LocalProtocolError(f"a client transaction already uses {key}")
        txn: ClientTransaction
        if request.method == "INVITE":
            txn = ClientInvite(key, request, peer, self._runtime, now=now)
        else:
            txn = ClientNonInvite(key, request, peer, self._runtime, now=now)
        self._clients[key] = txn
        self._runtime.compact(len(self))
        return key

    def send_response(self, key: str, response: Response, *, now: float) -> None:
        """Send ``response`` in server transaction ``key``, to the peer the request came from.

        When the transaction has already terminated (its ``TransactionTerminated``
        may still be queued, or already taken), a 2xx to INVITE is still sent,
        statelessly, and anything else is dropped: nobody can use it any more.

        Raises:
            LocalProtocolError: the transaction's state does not allow this
                response (a provisional after the final, say).
        """
        txn = self._servers.get(key)
        if txn is not None:
            txn.respond(response, now=now)
            self._runtime.compact(len(self))
            if response.status >= 200:
                # The transaction now only waits out its timers (up to 64*T1 on UDP): keep the
                # messages' lines, drop their parsed header values (re-parsed if ever read).
                forget_parsed(txn.request)
                forget_parsed(response)
            return
        if 200 <= response.status < 300 and response.method == "INVITE":
            # RFC 3261 §16.7 step 10: with no server transaction left, a 2xx goes out statelessly.
            old = self._finished.get(key)
            self.send_stateless(response, old.peer if old is not None else _via_peer(response))

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Queue ``message`` for ``peer`` outside any transaction (2xx ACK, stateless proxying)."""
        self._runtime.send(message, peer)

    # -- CANCEL (RFC 3261 §9) ----------------------------------------------------------

    def find_invite(self, cancel: Request) -> str | None:
        """The key of the live INVITE server transaction ``cancel`` refers to, else ``None``.

        Raises:
            ParseError: the CANCEL lacks a header that matching needs.
        """
        # RFC 3261 §9.2: the §17.2.3 matching rules, with the method taken as INVITE.
        key = server_key(cancel, method="INVITE")
        return key if isinstance(self._servers.get(key), ServerInvite) else None

    def cancel_request(self, key: str) -> Request:
        """Build the CANCEL for client INVITE transaction ``key`` (RFC 3261 §9.1); send nothing.

        Raises:
            KeyError: no such client transaction.
            LocalProtocolError: ``key`` is not an INVITE client transaction.
        """
        txn = self._clients.get(key) or self._finished.get(key)
        if not isinstance(txn, ClientInvite):
            raise KeyError(key) if txn is None else LocalProtocolError(f"{key} is not an INVITE")
        return build_cancel(txn.request)

    def request_cancel(self, key: str, *, now: float) -> str | None:
        """Cancel client INVITE transaction ``key`` as soon as RFC 3261 §9.1 allows.

        With a provisional already received, the CANCEL starts its own
        non-INVITE client transaction now and its key is returned. Before any
        provisional, the layer waits and sends it on the first one; after a
        final response (or for a transaction that is gone) nothing is sent.
        ``CancelSent`` reports every CANCEL the layer starts. Asking twice
        sends one CANCEL.

        Returns:
            The CANCEL's client transaction key, or ``None`` when it is not sent now.
        """
        txn = self._clients.get(key)
        if not isinstance(txn, ClientInvite):
            return None
        if txn.cancel_key is not None:
            return txn.cancel_key
        txn.cancel_wanted = True
        return self._cancel_if_ready(txn, now)

    def _cancel_if_ready(self, txn: ClientInvite, now: float) -> str | None:
        state = txn.state
        if state is client_invite.State.CALLING:
            # RFC 3261 §9.1: no CANCEL before a provisional response; wait for one.
            return None
        txn.cancel_wanted = False
        if state is not client_invite.State.PROCEEDING:
            # RFC 3261 §9.1: a final response came first: there is nothing left to cancel.
            return None
        cancel_key = self.send_request(build_cancel(txn.request), txn.peer, now=now)
        txn.cancel_key = cancel_key
        self._runtime.emit(CancelSent(txn.key, cancel_key))
        return cancel_key

    # -- queries -----------------------------------------------------------------------

    def server_request(self, key: str) -> Request:
        """The request that created server transaction ``key``.

        Raises:
            KeyError: unknown key, or its ``TransactionTerminated`` was already taken.
        """
        txn = self._servers.get(key) or self._finished.get(key)
        if not isinstance(txn, ServerInvite | ServerNonInvite):
            raise KeyError(key)
        return txn.request

    def client_request(self, key: str) -> Request:
        """The request of client transaction ``key`` (see :meth:`server_request`)."""
        txn = self._clients.get(key) or self._finished.get(key)
        if not isinstance(txn, ClientInvite | ClientNonInvite):
            raise KeyError(key)
        return txn.request

    def has_final_response(self, key: str) -> bool:
        """Whether server transaction ``key`` sent a final response.

        A terminated transaction counts as final: it can send nothing more.

        Raises:
            KeyError: unknown key, or its ``TransactionTerminated`` was already taken.
        """
        txn = self._servers.get(key)
        if txn is not None:
            return txn.final_sent
        if isinstance(self._finished.get(key), ServerInvite | ServerNonInvite):
            return True
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` names a live (not yet terminated) transaction."""
        return key in self._clients or key in self._servers

    def __len__(self) -> int:
        """The number of live transactions."""
        return len(self._clients) + len(self._servers)

    # -- outputs -----------------------------------------------------------------------

    def messages_to_send(self) -> list[Outgoing]:
        """Take the messages queued for the transport, in order."""
        out = self._runtime.outbox
        self._runtime.outbox = []
        return out

    def next_event(self) -> TransactionEvent | None:
        """Take the next event for the TU, or ``None``."""
        events = self._runtime.events
        if not events:
            return None
        event = events.popleft()
        if isinstance(event, TransactionTerminated):
            self._finished.pop(event.key, None)
        return event

    def next_deadline(self) -> float | None:
        """When ``handle_timers`` must next be called (``None``: no timer armed)."""
        heap = self._runtime.heap
        while heap and not Runtime.live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- internals ---------------------------------------------------------------------

    def _forget(self, txn: Transaction) -> None:
        # Only the live transaction itself can terminate, so it is the one in the map.
        if isinstance(txn, ClientInvite | ClientNonInvite):
            del self._clients[txn.key]
        else:
            del self._servers[txn.key]
        self._finished[txn.key] = txn


def _ack_matches(txn: ServerInvite, ack: Request) -> bool:
    if is_rfc3261_branch(txn.request.top_via):
        return True
    # RFC 3261 §17.2.3: an RFC 2543 ACK also carries the To tag of the response sent.
    return txn.final is not None and txn.final.to_addr.tag == ack.to_addr.tag


def _via_peer(response: Response) -> Peer:
    """Where a response goes by its top Via alone: received/rport, else sent-by (port 5060)."""
    via = response.top_via
    port = via.rport or via.port or 5060
    transport = via.transport if via.transport in ("UDP", "TCP", "TLS") else "UDP"
    return Peer(transport, via.received or via.host, port)


def forget_parsed(message: Request | Response) -> None:
    """Drop the parsed header values of ``message``; they are parsed again if ever read.

    Thousands of transactions wait out their timers at any time; their parsed values are
    most of the objects the garbage collector walks, and none of them is read again.
    """
    values = getattr(message, "_values", None)
    if isinstance(values, list):
        values[:] = [None] * len(values)
    uri = getattr(message, "_uri_text", None)
    if uri is not None:
        message._uri = None  # type: ignore[union-attr]


def build_cancel(invite: Request) -> Request:
    """The CANCEL for ``invite`` (RFC 3261 §9.1)."""
    # RFC 3261 §9.1: Request-URI, Call-ID, To, From and CSeq number of the INVITE, method CANCEL,
    # one Via equal to the INVITE's top Via, and the INVITE's Route headers.
    cancel = Request(
        "CANCEL",
        invite.uri,
        [
            ("Via", invite.top_via),
            ("Max-Forwards", 70),
            ("From", invite["From"]),
            ("To", invite["To"]),
            ("Call-ID", invite["Call-ID"]),
            ("CSeq", CSeq(invite.cseq.number, "CANCEL")),
        ],
    )
    routes = invite.get_all("Route")
    if routes:
        cancel["Route"] = routes
    return cancel
