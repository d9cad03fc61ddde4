"""An in-memory network for transaction-layer tests.

Nodes are transaction layers at made-up addresses. What one node sends is
serialized, maybe dropped, duplicated or delayed (seeded; stream transports
are never lossy and keep their order), parsed again and handed to the node at
the destination address. :meth:`Network.run_until_idle` steps the fake clock
from one deadline to the next (wire deliveries, layer timers, TU timers), so
schedules are exact and runs are reproducible.

Small TUs drive the nodes: :class:`Uac` ACKs every 2xx, :class:`Uas` answers
(retransmitting its 2xx until the ACK, RFC 3261 §13.3.1.4) and :class:`Relay`
is a minimal stateful proxy.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Protocol

from callscript.sip.events import (
    Outgoing,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionTimedOut,
)
from callscript.sip.headers import CSeq
from callscript.sip.ids import CountingIds
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.timers import TimerConfig
from callscript.sip.transaction import TransactionLayer
from callscript.sip.via import Via


class FakeClock:
    """Monotonic seconds that only move when a test moves them."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now


# -- message builders ------------------------------------------------------------------


def make_request(
    method: str,
    *,
    branch: str = "z9hG4bK-1",
    via_host: str = "10.0.0.1",
    via_port: int | None = 5060,
    transport: str = "UDP",
    uri: str = "sip:bob@example.com",
    call_id: str = "call-1",
    cseq: int = 1,
    from_tag: str | None = "ftag",
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
) -> Request:
    """A request with everything transaction matching reads."""
    via_params: dict[str, str | None] = {"branch": branch} if branch else {}
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    frm = "<sip:alice@example.com>" + (f";tag={from_tag}" if from_tag else "")
    headers: list[tuple[str, object]] = [
        ("Via", Via(transport, via_host, via_port, via_params)),
        ("Max-Forwards", 70),
        ("From", frm),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", CSeq(cseq, method)),
    ]
    headers += [("Route", route) for route in routes]
    return Request(method, uri, headers)


def make_response(request: Request, status: int, *, to_tag: str | None = None) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6.2): Vias, From, To (+tag), Call-ID, CSeq."""
    response = Response(status, {100: "Trying", 180: "Ringing", 200: "OK"}.get(status, "Status"))
    response["Via"] = request.via
    response["From"] = request["From"]
    to = request.to_addr
    if to_tag is not None and to.tag is None:
        to = to.with_params(tag=to_tag)
    response["To"] = to
    response["Call-ID"] = request["Call-ID"]
    response["CSeq"] = request.cseq
    return response


def make_ack_for_2xx(invite: Request, response: Response, branch: str) -> Request:
    """The UAC's ACK for a 2xx (RFC 3261 §13.2.2.4): a new transaction-less request."""
    via = invite.top_via
    ack = Request(
        "ACK", invite.uri, [("Via", Via(via.transport, via.host, via.port, {"branch": branch}))]
    )
    ack["Max-Forwards"] = 70
    ack["From"] = invite["From"]
    ack["To"] = response["To"]
    ack["Call-ID"] = invite["Call-ID"]
    ack["CSeq"] = CSeq(invite.cseq.number, "ACK")
    return ack


def drain(layer: TransactionLayer) -> list[TransactionEvent]:
    """Take every queued event of ``layer``."""
    events = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    return events


# -- the network -----------------------------------------------------------------------


class Tu(Protocol):
    """What drives a node: events in, optional timers of its own."""

    def on_event(self, node: Node, event: TransactionEvent, now: float) -> None: ...

    def deadline(self) -> float | None: ...

    def on_timer(self, node: Node, now: float) -> None: ...


@dataclass
class Sent:
    """One message a node put on the wire."""

    time: float
    sender: str
    out: Outgoing

    @property
    def label(self) -> str:
        """``INVITE`` or ``200 INVITE``: what was sent, for readable asserts."""
        message = self.out.message
        if isinstance(message, Request):
            return message.method
        return f"{message.status} {message.method}"


@dataclass
class Node:
    """A transaction layer at ``host:port`` with the events it produced and its TU."""

    name: str
    host: str
    port: int
    layer: TransactionLayer
    tu: Tu | None = None
    timeline: list[tuple[float, TransactionEvent]] = field(default_factory=list)

    @property
    def events(self) -> list[TransactionEvent]:
        """Every event this node's layer produced, in order."""
        return [event for _, event in self.timeline]

    def peer(self, transport: str = "UDP") -> Peer:
        """This node's address as a peer."""
        return Peer(transport, self.host, self.port)


class Network:
    """Nodes linked by a seeded, lossy datagram network (streams are reliable and ordered)."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
        timers: TimerConfig | None = None,
    ) -> None:
        self.clock = clock
        self.timers = timers or TimerConfig()
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.rng = random.Random(seed)
        self.nodes: dict[tuple[str, int], Node] = {}
        self.sent: list[Sent] = []
        self.delivered = 0
        self._wire: list[tuple[float, int, Node, bytes, Peer]] = []
        self._seq = 0

    def add(self, name: str, host: str, port: int = 5060, tu: Tu | None = None) -> Node:
        """Put a new node with its own layer on the network."""
        node = Node(name, host, port, TransactionLayer(timers=self.timers), tu)
        self.nodes[(host, port)] = node
        return node

    def labels(self, sender: str | None = None) -> list[tuple[float, str]]:
        """``(time, label)`` of everything sent (by ``sender``), in order."""
        return [(s.time, s.label) for s in self.sent if sender is None or s.sender == sender]

    def run_until_idle(
        self, *, until: float | None = None, max_steps: int = 1_000_000
    ) -> list[float]:
        """Deliver and fire everything, deadline after deadline, until nothing is left.

        Returns:
            The times at which messages were put on the wire during the run.
        """
        first = len(self.sent)
        for node in list(self.nodes.values()):
            self._flush(node)
        for _ in range(max_steps):
            due = self._next_time()
            if due is None or (until is not None and due > until):
                break
            self.clock.now = max(self.clock.now, due)
            self._step(self.clock.now)
        else:
            raise AssertionError("the network never went idle")
        return [s.time for s in self.sent[first:]]

    def _next_time(self) -> float | None:
        times = [self._wire[0][0]] if self._wire else []
        for node in self.nodes.values():
            deadline = node.layer.next_deadline()
            if deadline is not None:
                times.append(deadline)
            if node.tu is not None and (tu_deadline := node.tu.deadline()) is not None:
                times.append(tu_deadline)
        return min(times) if times else None

    def _step(self, now: float) -> None:
        while self._wire and self._wire[0][0] <= now:
            _, _, node, data, source = heapq.heappop(self._wire)
            self.delivered += 1
            message = parse_message(data)
            if isinstance(message, Request):
                node.layer.handle_request(message, source, now=now)
            else:
                node.layer.handle_response(message, source, now=now)
            self._flush(node)
        for node in list(self.nodes.values()):
            deadline = node.layer.next_deadline()
            if deadline is not None and deadline <= now:
                node.layer.handle_timers(now=now)
                self._flush(node)
            if (
                node.tu is not None
                and (tu_deadline := node.tu.deadline()) is not None
                and tu_deadline <= now
            ):
                node.tu.on_timer(node, now)
                self._flush(node)

    def _flush(self, node: Node) -> None:
        now = self.clock.now
        while True:
            outgoing = node.layer.messages_to_send()
            for out in outgoing:
                self.sent.append(Sent(now, node.name, out))
                self._transmit(node, out, now)
            event = node.layer.next_event()
            if event is None and not outgoing:
                return
            while event is not None:
                node.timeline.append((now, event))
                if node.tu is not None:
                    node.tu.on_event(node, event, now)
                event = node.layer.next_event()

    def _transmit(self, sender: Node, out: Outgoing, now: float) -> None:
        target = self.nodes.get((out.peer.host, out.peer.port))
        if target is None:
            return
        source = sender.peer(out.peer.transport)
        data = bytes(out.message)
        if out.peer.reliable:
            arrivals = [now + self.delay[0]]
        else:
            if self.rng.random() < self.loss:
                return
            copies = 2 if self.rng.random() < self.duplicate else 1
            arrivals = [now + self.rng.uniform(*self.delay) for _ in range(copies)]
        for at in arrivals:
            self._seq += 1
            heapq.heappush(self._wire, (at, self._seq, target, data, source))


# -- transaction users -------------------------------------------------------------------


class Uac:
    """Sends INVITEs and requests, records what comes back, ACKs every 2xx to INVITE."""

    def __init__(self, next_hop: Peer) -> None:
        self.next_hop = next_hop
        self.ids = CountingIds("uac")
        self.responses: list[Response] = []
        self.acks_sent = 0
        self._invites: dict[str, Request] = {}

    def send(self, node: Node, request: Request, now: float) -> str:
        """Start a client transaction for ``request`` towards ``next_hop``."""
        if request.method == "INVITE":
            self._invites[request.call_id] = request
        return node.layer.send_request(request, self.next_hop, now=now)

    def on_event(self, node: Node, event: TransactionEvent, now: float) -> None:
        if not isinstance(event, ResponseReceived):
            return
        response = event.response
        self.responses.append(response)
        invite = self._invites.get(response.call_id)
        if response.method == "INVITE" and response.status // 100 == 2 and invite is not None:
            # The UAC core ACKs every 2xx that arrives (RFC 3261 section 13.2.2.4).
            ack = make_ack_for_2xx(invite, response, self.ids.branch())
            node.layer.send_stateless(ack, self.next_hop)
            self.acks_sent += 1

    def deadline(self) -> float | None:
        return None

    def on_timer(self, node: Node, now: float) -> None:
        pass


class Uas:
    """Answers every request: ``provisional`` (if any) then ``final`` to INVITEs, 200 otherwise.

    A 2xx to INVITE is retransmitted by this TU (RFC 3261 §13.3.1.4: T1
    doubling up to T2) until the ACK arrives or 64*T1 has passed.
    """

    def __init__(
        self, timers: TimerConfig, *, final: int = 200, provisional: int | None = 180
    ) -> None:
        self.timers = timers
        self.final = final
        self.provisional = provisional
        self.ids = CountingIds("uas")
        self.requests: list[Request] = []
        self.acks: list[Request] = []
        self._pending: dict[
            str, tuple[str, Request]
        ] = {}  # Call-ID -> (key, INVITE) not yet answered
        self._retransmit: dict[str, tuple[float, float, float, str, Response]] = {}

    def on_event(self, node: Node, event: TransactionEvent, now: float) -> None:
        if not isinstance(event, RequestReceived):
            return
        request, layer = event.request, node.layer
        if event.key is None:
            self.acks.append(request)
            self._retransmit.pop(request.call_id, None)
            return
        self.requests.append(request)
        if request.method == "CANCEL":
            layer.send_response(event.key, make_response(request, 200, to_tag="uas"), now=now)
            pending = self._pending.pop(request.call_id, None)
            if pending is not None:
                layer.send_response(
                    pending[0], make_response(pending[1], 487, to_tag="uas"), now=now
                )
            return
        if request.method != "INVITE":
            layer.send_response(event.key, make_response(request, 200, to_tag="uas"), now=now)
            return
        if self.provisional is not None:
            layer.send_response(
                event.key, make_response(request, self.provisional, to_tag="uas"), now=now
            )
        if self.final == 0:
            self._pending[request.call_id] = (event.key, request)
            return
        response = make_response(request, self.final, to_tag="uas")
        layer.send_response(event.key, response, now=now)
        if self.final < 300:
            t1 = self.timers.t1
            self._retransmit[request.call_id] = (
                now + t1,
                t1,
                now + self.timers.timeout,
                event.key,
                response,
            )

    def deadline(self) -> float | None:
        return min((entry[0] for entry in self._retransmit.values()), default=None)

    def on_timer(self, node: Node, now: float) -> None:
        for call_id, (at, interval, give_up, key, response) in list(self._retransmit.items()):
            if at > now:
                continue
            if at >= give_up:
                del self._retransmit[call_id]
                continue
            node.layer.send_response(key, response, now=now)
            interval = min(2 * interval, self.timers.t2)
            self._retransmit[call_id] = (now + interval, interval, give_up, key, response)


class Relay:
    """A minimal stateful proxy: forwards requests to ``next_hop`` with its own Via.

    Responses come back through the matching server transaction; ACKs for 2xx
    and stray responses go on statelessly; a CANCEL is answered and cancels
    the forwarded INVITE (RFC 3261 §16.10, through ``request_cancel``).
    """

    def __init__(self, next_hop: Peer, host: str, port: int) -> None:
        self.next_hop = next_hop
        self.host = host
        self.port = port
        self.ids = CountingIds("relay")
        self.server_of: dict[str, str] = {}  # client key -> server key
        self.client_of: dict[str, str] = {}  # server key -> client key

    def _via(self) -> Via:
        return Via(self.next_hop.transport, self.host, self.port, {"branch": self.ids.branch()})

    def on_event(self, node: Node, event: TransactionEvent, now: float) -> None:
        layer = node.layer
        match event:
            case RequestReceived(key=None, request=ack):
                copy = ack.copy()
                assert isinstance(copy, Request)
                copy.insert("Via", self._via())
                layer.send_stateless(copy, self.next_hop)
            case RequestReceived(key=str() as key, request=request) if request.method == "CANCEL":
                layer.send_response(key, make_response(request, 200, to_tag="relay"), now=now)
                invite_key = layer.find_invite(request)
                if invite_key is not None and invite_key in self.client_of:
                    layer.request_cancel(self.client_of[invite_key], now=now)
            case RequestReceived(key=str() as key, request=request):
                if request.method == "INVITE":
                    layer.send_response(key, make_response(request, 100), now=now)
                copy = request.copy()
                assert isinstance(copy, Request)
                copy.insert("Via", self._via())
                client = layer.send_request(copy, self.next_hop, now=now)
                self.server_of[client] = key
                self.client_of[key] = client
            case ResponseReceived(key=None, response=response):
                response.pop("Via")
                via = response.top_via
                layer.send_stateless(response, Peer(via.transport, via.host, via.port or 5060))
            case ResponseReceived(key=str() as key, response=response) if key in self.server_of:
                if response.status == 100:
                    return
                response.pop("Via")
                server = self.server_of[key]
                if response.status < 300 or not layer.has_final_response(server):
                    layer.send_response(server, response, now=now)
            case TransactionTimedOut(key=key) if key in self.server_of:
                server = self.server_of[key]
                if not layer.has_final_response(server):
                    request = layer.server_request(server)
                    layer.send_response(
                        server, make_response(request, 408, to_tag="relay"), now=now
                    )
            case _:
                pass

    def deadline(self) -> float | None:
        return None

    def on_timer(self, node: Node, now: float) -> None:
        pass
