"""Fixtures and in-memory parts for proxy-core tests.

The proxy core runs on the in-memory network of the transaction tests
(``tests/sip/transaction/netsim.py``), stepping a fake clock from deadline to
deadline. :class:`CoreLayer` makes a :class:`ProxyCore` look like a node's
transaction layer; :class:`Engine` steers it the way ``engine/router.py``
does (a test's ``route`` function answers ``RoutingNeeded``; ``ForwardNeeded``
goes to the URI's address); :class:`Caller` and :class:`Callee` are user
agents, the callee answering from a script of :class:`Answer` values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from callscript.sip.address import Address
from callscript.sip.events import (
    Outgoing,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
)
from callscript.sip.headers import CSeq
from callscript.sip.ids import CountingIds
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.proxy.events import ForwardNeeded, ProxyEvent, RoutingNeeded
from callscript.sip.reply import make_response
from callscript.sip.timers import TimerConfig
from callscript.sip.transaction import TransactionLayer
from callscript.sip.uri import URI
from callscript.sip.via import Via
from tests.sip.transaction.netsim import FakeClock, Network, Node

PROXY_HOST = "192.0.2.1"
CALLER_HOST = "192.0.2.10"


def proxy_config(timers: TimerConfig | None = None, **changes: object) -> ProxyConfig:
    """The proxy at 192.0.2.1:5060 serving example.com, on UDP and TCP."""
    values: dict[str, object] = {
        "domains": frozenset({"example.com"}),
        "local_hosts": frozenset({PROXY_HOST}),
        "local_ports": frozenset({5060}),
        "via": {"UDP": (PROXY_HOST, 5060), "TCP": (PROXY_HOST, 5060)},
        "timers": timers or TimerConfig(),
    }
    values.update(changes)
    return ProxyConfig(**values)  # type: ignore[arg-type]


def request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *,
    branch: str = "z9hG4bK-c1",
    via: str | None = None,
    call_id: str = "call-1",
    cseq: int = 1,
    to_tag: str | None = None,
    max_forwards: int | None = 70,
    headers: Iterable[tuple[str, object]] = (),
) -> Request:
    """A request from alice to bob as the proxy receives it."""
    if via is None:
        via = f"SIP/2.0/UDP {CALLER_HOST};branch={branch}"
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    fields: list[tuple[str, object]] = [("Via", Via.parse(via))]
    if max_forwards is not None:
        fields.append(("Max-Forwards", max_forwards))
    fields += [
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", CSeq(cseq, method)),
        ("Contact", f"<sip:alice@{CALLER_HOST}>"),
    ]
    fields += list(headers)
    return Request(method, uri, fields)


def parse_request(data: bytes) -> Request:
    """Parse ``data``, which must be a request."""
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def conformance_dir() -> Path | None:
    """The shared RFC 4475/5118 corpus: $CALLSCRIPT_CONFORMANCE, else <repo>/../shared/conformance."""
    env = os.environ.get("CALLSCRIPT_CONFORMANCE")
    root = (
        Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "conformance"
    )
    return root if root.is_dir() else None


def conformance_message(name: str) -> bytes:
    """The bytes of ``rfc4475/<name>.dat``; skips the test when the corpus is absent."""
    root = conformance_dir()
    if root is None or not (root / "rfc4475" / f"{name}.dat").is_file():
        pytest.skip(
            "RFC 4475 corpus not found: set CALLSCRIPT_CONFORMANCE to the conformance "
            "directory or put it at <repo>/../shared/conformance"
        )
    return (root / "rfc4475" / f"{name}.dat").read_bytes()


def peer_of(uri: URI) -> Peer:
    """Where the engine would send a message for ``uri`` (numeric hosts only here)."""
    transport = (uri.transport or "udp").upper()
    return Peer(transport, uri.host, uri.port or 5060)


# -- the proxy node ----------------------------------------------------------------------


class CoreLayer:
    """A :class:`ProxyCore` seen through the transaction-layer methods the network calls."""

    def __init__(self, core: ProxyCore) -> None:
        self.core = core

    def handle_request(self, request: Request, source: Peer, *, now: float) -> None:
        self.core.handle_request(request, source, now=now)

    def handle_response(self, response: Response, source: Peer, *, now: float) -> None:
        self.core.handle_response(response, source, now=now)

    def handle_timers(self, *, now: float) -> None:
        self.core.handle_timers(now=now)

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def messages_to_send(self) -> list[Outgoing]:
        return self.core.messages_to_send()

    def next_event(self) -> ProxyEvent | None:
        return self.core.next_event()


Route = Callable[[ProxyCore, RoutingNeeded, float], None]


class Engine:
    """Steers the core: ``route`` decides each request; stateless forwards go to the URI."""

    def __init__(self, core: ProxyCore, route: Route | None = None) -> None:
        self.core = core
        self.route = route
        self.events: list[tuple[float, ProxyEvent]] = []

    def on_event(self, node: Node, event: object, now: float) -> None:
        assert isinstance(event, ProxyEvent)
        self.events.append((now, event))
        match event:
            case RoutingNeeded() if self.route is not None:
                self.route(self.core, event, now)
            case ForwardNeeded(message=message, next_hop=uri):
                self.core.send_stateless(message, peer_of(uri))
            case _:
                pass

    def of(self, kind: type[ProxyEvent]) -> list[ProxyEvent]:
        """The events of type ``kind``, in order."""
        return [event for _, event in self.events if isinstance(event, kind)]

    def deadline(self) -> float | None:
        return None

    def on_timer(self, node: Node, now: float) -> None:
        pass


# -- user agents ---------------------------------------------------------------------------


class Caller:
    """Sends requests to the proxy, records responses, ACKs every 2xx (RFC 3261 §13.2.2.4)."""

    def __init__(self, proxy: Peer) -> None:
        self.proxy = proxy
        self.ids = CountingIds("uac")
        self.responses: list[tuple[float, Response]] = []
        self.acks: list[Request] = []
        self.keys: dict[str, str] = {}
        self._requests: dict[str, Request] = {}

    def send(self, node: Node, message: Request, now: float) -> str:
        """Start a client transaction for ``message`` towards the proxy."""
        key = node.layer.send_request(message, self.proxy, now=now)
        self.keys[message.call_id] = key
        self._requests[message.call_id] = message
        return key

    def call(self, node: Node, now: float, *, call_id: str = "call-1", **kwargs: object) -> str:
        """Send an INVITE to bob (``kwargs`` as for :func:`request`)."""
        invite = request("INVITE", branch=self.ids.branch(), call_id=call_id, **kwargs)  # type: ignore[arg-type]
        return self.send(node, invite, now)

    def cancel(self, node: Node, now: float, call_id: str = "call-1") -> None:
        """CANCEL the INVITE of ``call_id`` (the layer waits for a provisional, RFC 3261 §9.1)."""
        node.layer.request_cancel(self.keys[call_id], now=now)

    def statuses(self, method: str = "INVITE") -> list[int]:
        """Statuses of the responses to ``method`` received, in order."""
        return [r.status for _, r in self.responses if r.method == method]

    def on_event(self, node: Node, event: TransactionEvent, now: float) -> None:
        if not isinstance(event, ResponseReceived):
            return
        response = event.response
        self.responses.append((now, response))
        sent = self._requests.get(response.call_id)
        if response.method == "INVITE" and response.status // 100 == 2 and sent is not None:
            ack = self._ack(sent, response)
            self.acks.append(ack)
            node.layer.send_stateless(ack, self.proxy)

    def _ack(self, invite: Request, response: Response) -> Request:
        # RFC 3261 §13.2.2.4 and §12.1.2: to the Contact, along the reversed Record-Route.
        target = response.contacts[0].uri
        ack = Request(
            "ACK", target, [("Via", Via("UDP", CALLER_HOST, 5060, {"branch": self.ids.branch()}))]
        )
        ack["Max-Forwards"] = 70
        ack["From"] = invite["From"]
        ack["To"] = response["To"]
        ack["Call-ID"] = invite["Call-ID"]
        ack["CSeq"] = CSeq(invite.cseq.number, "ACK")
        routes = list(reversed(response.get_all("Record-Route")))
        if routes:
            ack["Route"] = routes
        return ack

    def deadline(self) -> float | None:
        return None

    def on_timer(self, node: Node, now: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Answer:
    """One response of a callee's script: ``status`` sent ``at`` seconds after the request.

    ``only_top_via``: a broken callee that echoes the top Via alone.
    """

    status: int
    at: float = 0.0
    headers: tuple[tuple[str, object], ...] = ()
    only_top_via: bool = False


class Callee:
    """Answers INVITEs from a script of :class:`Answer`; other requests get ``other`` (200).

    When the script ends without a final response the INVITE waits; a CANCEL
    then gets 200 and the INVITE 487 (RFC 3261 §9.2), unless ``ignore_cancel``
    (a broken callee that answers the CANCEL and nothing else). A 2xx is
    retransmitted, T1 doubling up to T2, until its ACK arrives or 64*T1 has
    passed (RFC 3261 §13.3.1.4).
    """

    def __init__(
        self, name: str, *script: Answer | int, other: int = 200, timers: TimerConfig | None = None
    ) -> None:
        self.name = name
        self.timers = timers or TimerConfig()
        self._retransmit: dict[str, tuple[float, float, float, str, Response]] = {}
        self.script = [a if isinstance(a, Answer) else Answer(a) for a in script]
        self.other = other
        self.ignore_cancel = False
        self.requests: list[tuple[float, Request]] = []
        self.acks: list[tuple[float, Request]] = []
        self._pending: dict[str, tuple[str, Request]] = {}
        self._due: list[tuple[float, str, Request, Answer]] = []

    def methods(self) -> list[str]:
        """Methods of the requests received (ACKs for 2xx included), in order."""
        seen = [(t, r.method) for t, r in self.requests] + [(t, "ACK") for t, _ in self.acks]
        return [m for _, m in sorted(seen, key=lambda item: item[0])]

    def on_event(self, node: Node, event: TransactionEvent, now: float) -> None:
        if not isinstance(event, RequestReceived):
            return
        message = event.request
        if event.key is None:
            self.acks.append((now, message))
            self._retransmit.pop(message.call_id, None)
            return
        self.requests.append((now, message))
        if message.method == "CANCEL":
            self._respond(node, event.key, message, Answer(200), now)
            if self.ignore_cancel:
                return
            pending = self._pending.pop(message.call_id, None)
            if pending is not None:
                self._due = [d for d in self._due if d[1] != pending[0]]
                self._respond(node, pending[0], pending[1], Answer(487), now)
            return
        if message.method != "INVITE":
            self._respond(node, event.key, message, Answer(self.other), now)
            return
        self._pending[message.call_id] = (event.key, message)
        for answer in self.script:
            self._due.append((now + answer.at, event.key, message, answer))
        self.on_timer(node, now)

    def _respond(self, node: Node, key: str, message: Request, answer: Answer, now: float) -> None:
        response = make_response(message, answer.status, to_tag=f"{self.name}-tag")
        if message.method == "INVITE" and answer.status // 100 in (1, 2):
            transport = message.top_via.transport
            params: dict[str, str | None] = {}
            if transport != "UDP":
                params["transport"] = transport.lower()
            contact = URI("sip", user="bob", host=node.host, port=node.port, params=params)
            response.add("Contact", Address(contact))
            # RFC 3261 §12.1.1: the dialog's route set comes back in the response.
            record_route = message.get_all("Record-Route")
            if record_route:
                response["Record-Route"] = record_route
        for name, value in answer.headers:
            response.add(name, value)
        if answer.only_top_via:
            response["Via"] = response.top_via
        node.layer.send_response(key, response, now=now)
        if message.method == "INVITE" and answer.status // 100 == 2:
            t1 = self.timers.t1
            give_up = now + self.timers.timeout
            self._retransmit[message.call_id] = (now + t1, t1, give_up, key, response)

    def deadline(self) -> float | None:
        times = [d[0] for d in self._due] + [r[0] for r in self._retransmit.values()]
        return min(times, default=None)

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
        due = sorted((d for d in self._due if d[0] <= now), key=lambda d: d[0])
        self._due = [d for d in self._due if d[0] > now]
        for _, key, message, answer in due:
            if message.call_id not in self._pending:
                continue  # cancelled (487 sent) or already answered
            if answer.status >= 200:
                del self._pending[message.call_id]
            self._respond(node, key, message, answer, now)


# -- the whole setup --------------------------------------------------------------------


class Sim:
    """Caller -> proxy core -> callees on one in-memory network and fake clock."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        timers: TimerConfig | None = None,
        loss: float = 0.0,
        seed: int = 0,
        config: ProxyConfig | None = None,
    ) -> None:
        self.clock = clock
        self.timers = timers or TimerConfig()
        self.net = Network(clock, timers=self.timers, loss=loss, seed=seed)
        self.config = config or proxy_config(self.timers)
        layer = TransactionLayer(timers=self.timers)
        self.core = ProxyCore(self.config, CountingIds("p"), layer=layer)
        self.engine = Engine(self.core)
        self.proxy = Node(
            "proxy", PROXY_HOST, 5060, cast(TransactionLayer, CoreLayer(self.core)), self.engine
        )
        self.net.nodes[(PROXY_HOST, 5060)] = self.proxy
        self.caller = Caller(Peer("UDP", PROXY_HOST, 5060))
        self.uac = self.net.add("caller", CALLER_HOST, 5060, tu=self.caller)
        self.callees: dict[str, Callee] = {}

    def callee(self, name: str, host: str, *script: Answer | int, other: int = 200) -> Node:
        """Put a callee with ``script`` at ``host``:5060."""
        callee = Callee(name, *script, other=other, timers=self.timers)
        self.callees[name] = callee
        return self.net.add(name, host, 5060, tu=callee)

    def route(self, route: Route) -> None:
        """How the engine answers ``RoutingNeeded``."""
        self.engine.route = route

    def fork(
        self, *groups: list[Target], ring_timeout: float | None = None, final: bool = True
    ) -> None:
        """Route every request to ``groups``."""

        def route(core: ProxyCore, event: RoutingNeeded, now: float) -> None:
            core.proxy(
                event.ctx,
                [list(g) for g in groups],
                now=now,
                ring_timeout=ring_timeout,
                final=final,
            )

        self.route(route)

    def call(self, **kwargs: object) -> str:
        """The caller sends an INVITE now."""
        return self.caller.call(self.uac, self.clock.now, **kwargs)  # type: ignore[arg-type]

    def run(self, until: float | None = None) -> list[float]:
        """Run the network until idle (or ``until``)."""
        return self.net.run_until_idle(until=until)

    def labels(self, sender: str) -> list[tuple[float, str]]:
        """``(time, label)`` of what ``sender`` put on the wire."""
        return self.net.labels(sender)

    def sent_to(self, host: str, sender: str = "proxy") -> list[tuple[float, str]]:
        """``(time, label)`` of what ``sender`` sent to ``host``."""
        return [
            (s.time, s.label)
            for s in self.net.sent
            if s.sender == sender and s.out.peer.host == host
        ]

    def messages_to(self, host: str, sender: str = "proxy") -> list[Request | Response]:
        """The messages ``sender`` sent to ``host``, in order."""
        return [
            s.out.message for s in self.net.sent if s.sender == sender and s.out.peer.host == host
        ]


def target(*nodes: Node, user: str = "bob", transport: str = "UDP") -> Target:
    """A target at the first node's address, failing over to the next nodes."""
    first = nodes[0]
    uri = URI("sip", user=user, host=first.host, port=first.port)
    return Target(uri, tuple(Peer(transport, n.host, n.port) for n in nodes))


def dead(host: str, transport: str = "UDP") -> Peer:
    """A peer where nothing listens (the network drops what goes there)."""
    return Peer(transport, host, 5060)


@pytest.fixture
def clock() -> FakeClock:
    """Time starts at 0.0 and moves only when the network moves it."""
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Sim:
    """A lossless network with default timers: caller, proxy core, no callee yet."""
    return Sim(clock)


@pytest.fixture
def config() -> ProxyConfig:
    """The proxy's configuration for unit tests of validate/route/forward."""
    return proxy_config()
