"""Random walks through each transaction type (hypothesis ``RuleBasedStateMachine``).

Whatever arrives, in whatever order, and whenever the timers are run:
terminated is final (no event and no retransmission after it), the TU never
gets two final responses from one client transaction (2xx in Accepted aside:
RFC 6026 passes every 2xx up, and they are all 2xx), the peer never sees two
different final responses from one server transaction (a proxy's late 2xx
aside), and no timer is ever due before ``now`` once ``handle_timers`` ran.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from netsim import make_request, make_response

from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import (
    AckTimedOut,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from callscript.sip.message import Request, Response
from callscript.sip.transaction import TransactionLayer

STATUSES = st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 503, 603])
TRANSPORTS = st.sampled_from(["UDP", "TCP"])
STEPS = st.floats(min_value=0.0, max_value=40.0, allow_nan=False)
SETTINGS = settings(max_examples=150, stateful_step_count=30, deadline=None)


class LayerWalk(RuleBasedStateMachine):
    """What every walk shares: a clock, the layer, and the event checks."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = TransactionLayer()
        self.now = 0.0
        self.terminated: set[str] = set()
        self.finals: dict[str, list[int]] = defaultdict(list)
        self.failed: set[str] = set()
        self.sent: list[Request | Response] = []

    def collect(self) -> None:
        self.sent += [out.message for out in self.layer.messages_to_send()]
        while (event := self.layer.next_event()) is not None:
            self.check(event)

    def check(self, event: TransactionEvent) -> None:
        key = getattr(event, "key", None)
        if key is None:
            return
        # Terminated is final: nothing more is heard of the transaction.
        assert key not in self.terminated, event
        match event:
            case TransactionTerminated():
                self.terminated.add(key)
            case ResponseReceived(response=response) if response.status >= 200:
                assert key not in self.failed, event
                previous = self.finals[key]
                # One final per client transaction; only Accepted (RFC 6026) repeats, and only 2xx.
                assert not previous or (response.status < 300 and all(s < 300 for s in previous)), (
                    previous,
                    response.status,
                )
                previous.append(response.status)
            case TransactionTimedOut() | TransportFailed():
                # A client transaction gives the TU one outcome: a final response or a failure.
                assert not self.finals[key], event
                assert key not in self.failed, event
                self.failed.add(key)
            case _:
                pass

    def advance(self, dt: float) -> None:
        self.now += dt
        self.layer.handle_timers(now=self.now)
        self.collect()

    @rule(dt=STEPS)
    def wait(self, dt: float) -> None:
        self.advance(dt)

    @rule()
    def next_timer(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is not None:
            self.advance(deadline - self.now)

    @invariant()
    def no_timer_in_the_past(self) -> None:
        deadline = self.layer.next_deadline()
        assert deadline is None or deadline > self.now

    @invariant()
    def terminated_keys_are_gone(self) -> None:
        for key in self.terminated:
            assert key not in self.layer


class ClientWalk(LayerWalk):
    method = "INVITE"

    @initialize(transport=TRANSPORTS)
    def start(self, transport: str) -> None:
        self.peer = Peer(transport, "10.0.0.2", 5060)
        self.request = make_request(self.method, transport=transport)
        self.key = self.layer.send_request(self.request, self.peer, now=self.now)
        self.end = 0
        self.collect()

    @rule(status=STATUSES, tag=st.sampled_from(["a", "b"]))
    def response(self, status: int, tag: str) -> None:
        live = self.key in self.layer
        before = len(self.sent)
        self.layer.handle_response(
            make_response(self.request, status, to_tag=tag), self.peer, now=self.now
        )
        self.collect()
        if not live:
            # A response for an ended transaction is stray: it goes up with no key; nothing is sent.
            assert len(self.sent) == before

    @rule()
    def transport_error(self) -> None:
        self.layer.handle_transport_error(self.key, now=self.now)
        self.collect()

    def check(self, event: TransactionEvent) -> None:
        super().check(event)
        if event == TransactionTerminated(self.key):
            self.end = len(self.sent)

    @invariant()
    def no_retransmission_after_termination(self) -> None:
        if self.key in self.terminated:
            assert not [
                m
                for m in self.sent[self.end :]
                if isinstance(m, Request) and m.method == self.method
            ]


class ClientInviteWalk(ClientWalk):
    """INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2)."""

    @rule()
    def cancel(self) -> None:
        self.layer.request_cancel(self.key, now=self.now)
        self.collect()


class ClientNonInviteWalk(ClientWalk):
    """Non-INVITE client transaction (RFC 3261 §17.1.2)."""

    method = "OPTIONS"


class ServerWalk(LayerWalk):
    method = "INVITE"

    @initialize(transport=TRANSPORTS)
    def start(self, transport: str) -> None:
        self.peer = Peer(transport, "10.0.0.1", 5060)
        self.request = make_request(self.method, transport=transport)
        self.layer.handle_request(self.request, self.peer, now=self.now)
        event = self.layer.next_event()
        assert isinstance(event, RequestReceived) and event.key is not None
        self.key = event.key
        self.final: int | None = None
        self.end = 0

    @rule(status=STATUSES)
    def respond(self, status: int) -> None:
        live = self.key in self.layer
        # Only a live transaction that sent its final refuses: a provisional, or another
        # non-2xx final to INVITE (a non-INVITE one discards later finals, RFC 3261 §17.2.2).
        refuses = (
            live
            and self.final is not None
            and (status < 200 or (status >= 300 and self.method == "INVITE"))
        )
        response = make_response(self.request, status, to_tag="t")
        try:
            self.layer.send_response(self.key, response, now=self.now)
        except LocalProtocolError:
            assert refuses
            return
        assert not refuses
        if live and status >= 200 and self.final is None:
            self.final = status
        self.collect()

    @rule()
    def retransmission(self) -> None:
        if self.key not in self.layer:
            return  # after the end, the same request would rightly start a new transaction
        self.layer.handle_request(
            make_request(self.method, transport=self.peer.transport), self.peer, now=self.now
        )
        self.collect()

    @rule()
    def transport_error(self) -> None:
        self.layer.handle_transport_error(self.key, now=self.now)
        self.collect()

    @invariant()
    def peer_sees_one_final(self) -> None:
        finals = {m.status for m in self.sent if isinstance(m, Response) and m.status >= 200}
        non_2xx = {s for s in finals if s >= 300}
        # One final response per server transaction; a proxy may still forward 2xx after a non-2xx.
        assert len(non_2xx) <= 1
        if self.final is not None and self.final < 300:
            assert not non_2xx

    @invariant()
    def nothing_after_termination_but_2xx(self) -> None:
        if self.key in self.terminated:
            late = [m for m in self.sent[self.end :] if isinstance(m, Response) and m.status >= 300]
            assert not late

    def check(self, event: TransactionEvent) -> None:
        super().check(event)
        if event == TransactionTerminated(self.key):
            self.end = len(self.sent)
        if isinstance(event, AckTimedOut):
            assert self.final is not None and self.final >= 300


class ServerInviteWalk(ServerWalk):
    """INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1)."""

    @rule(tag=st.sampled_from(["t", "x"]))
    def ack(self, tag: str) -> None:
        ack = make_request("ACK", transport=self.peer.transport, to_tag=tag)
        self.layer.handle_request(ack, self.peer, now=self.now)
        self.collect()


class ServerNonInviteWalk(ServerWalk):
    """Non-INVITE server transaction (RFC 3261 §17.2.2)."""

    method = "OPTIONS"

    @invariant()
    def one_final_on_the_wire(self) -> None:
        assert (
            len({m.status for m in self.sent if isinstance(m, Response) and m.status >= 200}) <= 1
        )


TestClientInvite = ClientInviteWalk.TestCase
TestClientInvite.settings = SETTINGS
TestClientNonInvite = ClientNonInviteWalk.TestCase
TestClientNonInvite.settings = SETTINGS
TestServerInvite = ServerInviteWalk.TestCase
TestServerInvite.settings = SETTINGS
TestServerNonInvite = ServerNonInviteWalk.TestCase
TestServerNonInvite.settings = SETTINGS
