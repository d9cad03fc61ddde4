"""The stateful proxy core (RFC 3261 §16), sans-I/O.

Theory of operation
-------------------
Inputs: received requests and responses (already parsed, §18.2.1 applied),
``handle_timers(now=)``, transport errors, and the engine's decisions
(``reply``, ``respond``, ``proxy``, ``forward_best``, ``send_stateless``).
Outputs, drained by the adapter: ``messages_to_send()``, ``next_event()``,
``next_deadline()``.

Every new request creates a server transaction (in the transaction layer)
and a :class:`ResponseContext`. After validation (§16.3), route
preprocessing (§16.4) and, for INVITE, a 100 Trying, the engine gets
:class:`RoutingNeeded`. ``proxy`` forks target groups (parallel inside a
group, groups in sequence) with a ring timeout per group and Timer C per
INVITE branch (§16.6 step 11); responses are processed per §16.7; a CANCEL
from the caller cancels every branch (§16.10). ACKs for 2xx and responses
that match no transaction are forwarded statelessly (§16.11) once the engine
has resolved their next hop.

Timers of the core itself (ring timeout, Timer C) share one heap with lazy
deletion; the transaction layer keeps its own.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

from callscript.sip.events import (
    AckTimedOut,
    Outgoing,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from callscript.sip.ids import IdSource
from callscript.sip.message import Request, Response
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.context import (
    Branch,
    BranchState,
    ResponseContext,
    Target,
    best_response,
    merge_challenges,
)
from callscript.sip.proxy.events import (
    ContextClosed,
    ForwardNeeded,
    ProxyCompleted,
    ProxyEvent,
    RequestCancelled,
    RoutingNeeded,
)
from callscript.sip.proxy.forward import forward_copy, stateless_branch
from callscript.sip.proxy.route import is_in_dialog, next_hop, preprocess_route
from callscript.sip.proxy.validate import validate_request
from callscript.sip.reply import make_response, reason_phrase
from callscript.sip.transaction.layer import TransactionLayer
from callscript.sip.uri import URI
from callscript.sip.via import Via

_RING = "ring"
_TIMER_C = "C"


class ProxyCore:
    """A stateful proxy steered by an engine; see the module docstring."""

    def __init__(
        self, config: ProxyConfig, ids: IdSource, layer: TransactionLayer | None = None
    ) -> None:
        self.config = config
        self.ids = ids
        self.layer = layer or TransactionLayer(timers=config.timers)
        self._contexts: dict[str, ResponseContext] = {}
        self._branches: dict[str, tuple[ResponseContext, Branch]] = {}
        self._events: deque[ProxyEvent] = deque()
        self._timers: list[tuple[float, int, str, str, int]] = []
        self._seq = 0
        self._closed_servers: set[str] = set()

    # -- inputs from the network -------------------------------------------------------

    def handle_request(self, request: Request, source: Peer, *, now: float) -> None:
        """A request arrived from ``source``."""
        self.layer.handle_request(request, source, now=now)
        self._drain(now)

    def handle_response(self, response: Response, source: Peer, *, now: float) -> None:
        """A response arrived from ``source``."""
        self.layer.handle_response(response, source, now=now)
        self._drain(now)

    def handle_transport_error(self, peer: Peer, *, now: float) -> None:
        """Sending to ``peer`` failed: every branch waiting on it fails over (RFC 3263 §4.3)."""
        for key, (_ctx, branch) in list(self._branches.items()):
            if branch.state is not BranchState.DONE and branch.peer.address == peer.address:
                self.layer.handle_transport_error(key, now=now)
        self._drain(now)

    def handle_timers(self, *, now: float) -> None:
        """Fire every timer due at ``now``."""
        self.layer.handle_timers(now=now)
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, ctx_key, index = heapq.heappop(self._timers)
            ctx = self._contexts.get(ctx_key)
            if ctx is None or (index >= len(ctx.branches) and kind == _TIMER_C):
                continue
            if kind == _RING and ctx.ring_deadline == deadline:
                self._on_ring_timeout(ctx, now)
            elif kind == _TIMER_C and ctx.branches[index].timer_c == deadline:
                self._on_timer_c(ctx, ctx.branches[index], now)
        self._drain(now)

    # -- outputs ---------------------------------------------------------------

    def messages_to_send(self) -> list[Outgoing]:
        """Messages to put on the wire now."""
        return self.layer.messages_to_send()

    def next_event(self) -> ProxyEvent | None:
        """The next event for the engine, or ``None``."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When ``handle_timers`` must next be called."""
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        own = self._timers[0][0] if self._timers else None
        layer = self.layer.next_deadline()
        if own is None or (layer is not None and layer < own):
            return layer
        return own

    def _timer_live(self, entry: tuple[float, int, str, str, int]) -> bool:
        deadline, _, kind, ctx_key, index = entry
        ctx = self._contexts.get(ctx_key)
        if ctx is None:
            return False
        if kind == _RING:
            return ctx.ring_deadline == deadline
        return index < len(ctx.branches) and ctx.branches[index].timer_c == deadline

    def context(self, ctx: str) -> ResponseContext | None:
        """The response context ``ctx``, while it lives."""
        return self._contexts.get(ctx)

    def __len__(self) -> int:
        return len(self._contexts)

    # -- the engine's decisions -----------------------------------------------------------

    def reply(
        self,
        ctx: str,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        now: float,
    ) -> Response:
        """Answer request ``ctx`` with a response built from it (a To tag is added)."""
        context = self._contexts[ctx]
        response = make_response(
            context.request,
            status,
            reason,
            to_tag=self.ids.tag(),
            headers=headers,
            body=body,
            content_type=content_type,
        )
        self.respond(ctx, response, now=now)
        return response

    def respond(self, ctx: str, response: Response, *, now: float) -> None:
        """Send ``response`` in request ``ctx``'s server transaction."""
        context = self._contexts[ctx]
        if context.final_sent and response.status >= 300:
            return
        self.layer.send_response(ctx, response, now=now)
        if response.status >= 200:
            context.final_sent = True
            self._cancel_live(context, now)
        self._drain(now)

    def proxy(
        self,
        ctx: str,
        groups: list[list[Target]],
        *,
        now: float,
        ring_timeout: float | None = None,
        final: bool = True,
    ) -> None:
        """Forward request ``ctx`` to ``groups`` of targets (RFC 3261 §16.5-§16.6).

        Args:
            groups: tried one after the other; the targets of a group in parallel.
            ring_timeout: seconds each group may ring before its branches are cancelled.
            final: forward the best response to the caller when all fail; when
                false the engine gets :class:`ProxyCompleted` and decides.
        """
        context = self._contexts[ctx]
        groups = [group for group in groups if group]
        if not groups:
            raise ValueError("proxy() needs at least one target")
        context.groups = groups[1:]
        context.forward_final = final
        context.ring_timeout = ring_timeout
        context.stored = []
        context.proxying = True
        self._start_group(context, groups[0], now)
        self._drain(now)

    def forward_best(self, ctx: str, response: Response, *, now: float) -> None:
        """Forward the response a non-final ``proxy`` call ended with."""
        self.respond(ctx, response, now=now)

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send a message of a :class:`ForwardNeeded` event to its resolved peer."""
        self.layer.send_stateless(message, peer)

    # -- transaction layer events ------------------------------------------------------

    def _drain(self, now: float) -> None:
        layer = self.layer
        while (event := layer.next_event()) is not None:
            match event:
                case RequestReceived(key=None, request=request):
                    self._forward_ack(request)
                case RequestReceived(key=str() as key, request=request, source=source):
                    if request.method == "CANCEL":
                        self._on_cancel(key, request, now)
                    else:
                        self._on_request(key, request, source, now)
                case ResponseReceived(key=None, response=response):
                    self._forward_stray(response)
                case ResponseReceived(key=str() as key, response=response):
                    found = self._branches.get(key)
                    if found is not None:
                        self._on_response(found[0], found[1], response, now)
                case TransactionTimedOut(key=key):
                    self._on_failure(key, 408, now)
                case TransportFailed(key=key):
                    self._on_failure(key, 503, now)
                case TransactionTerminated(key=key):
                    self._on_terminated(key)
                case AckTimedOut():
                    pass

    def _on_request(self, key: str, request: Request, source: Peer, now: float) -> None:
        error = validate_request(request, self.config)
        if error is not None:
            if error.status > 100 and error.to_addr.tag is None:
                error["To"] = error.to_addr.with_params(tag=self.ids.tag())
            self.layer.send_response(key, error, now=now)
            return
        preprocess_route(request, self.config)
        if request.method == "INVITE":
            # RFC 3261 §16.2: a stateful proxy answers an INVITE with 100 Trying at once.
            self.layer.send_response(key, make_response(request, 100), now=now)
        self._contexts[key] = ResponseContext(key, request, source)
        self._events.append(RoutingNeeded(key, request, source, is_in_dialog(request)))

    def _on_cancel(self, key: str, cancel: Request, now: float) -> None:
        invite_key = self.layer.find_invite(cancel)
        context = self._contexts.get(invite_key) if invite_key else None
        # RFC 3261 §16.10: no matching response context means 481.
        if context is None:
            self.layer.send_response(
                key, make_response(cancel, 481, to_tag=self.ids.tag()), now=now
            )
            return
        # RFC 3261 §16.10: answer the CANCEL with 200 and cancel every pending branch.
        self.layer.send_response(key, make_response(cancel, 200, to_tag=self.ids.tag()), now=now)
        if context.caller_cancelled or context.final_sent:
            return
        context.caller_cancelled = True
        context.groups = []
        self._events.append(RequestCancelled(context.key))
        if context.live_branches():
            self._cancel_live(context, now)
        else:
            response = make_response(context.request, 487, to_tag=self.ids.tag())
            self.layer.send_response(context.key, response, now=now)
            context.final_sent = True

    def _on_response(
        self, ctx: ResponseContext, branch: Branch, response: Response, now: float
    ) -> None:
        # RFC 3261 §16.7 step 3: remove our Via before anything else.
        response.pop("Via")
        status = response.status
        if status < 200:
            if branch.state is BranchState.DONE or status == 100:
                return
            branch.state = BranchState.RINGING
            if branch.timer_c is not None:
                # RFC 3261 §16.7 step 2: a provisional response above 100 restarts Timer C.
                self._set_timer_c(ctx, branch, now)
            # RFC 3261 §16.7 step 5: provisional responses other than 100 go upstream at once.
            if not ctx.final_sent:
                self.layer.send_response(ctx.key, response, now=now)
            return
        if status < 300:
            self._on_success(ctx, branch, response, now)
            return
        if branch.state is BranchState.DONE:
            return
        if status == 503 and branch.has_next_peer and not branch.cancelled:
            # RFC 3263 §4.3: a 503 moves on to the next resolved peer.
            self._failover(ctx, branch, now)
            return
        self._finish_branch(ctx, branch, response)
        if status >= 600:
            # RFC 3261 §16.7 step 5: a 6xx cancels every other branch and stops the search.
            ctx.six_xx = True
            ctx.groups = []
            self._cancel_live(ctx, now)
        self._check_complete(ctx, now)

    def _on_success(
        self, ctx: ResponseContext, branch: Branch, response: Response, now: float
    ) -> None:
        first = not ctx.answered
        if branch.state is not BranchState.DONE:
            self._finish_branch(ctx, branch, response)
        ctx.answered = True
        ctx.ring_deadline = None
        # RFC 3261 §16.7 step 5: every 2xx is forwarded immediately, even after another one.
        self.layer.send_response(ctx.key, response, now=now)
        ctx.final_sent = True
        ctx.groups = []
        # RFC 3261 §16.7 step 10: once a final response went upstream, cancel the other branches.
        self._cancel_live(ctx, now)
        if first and ctx.proxying:
            ctx.proxying = False
            self._events.append(
                ProxyCompleted(ctx.key, ctx.request, response.status, response, True)
            )

    def _on_failure(self, key: str, status: int, now: float) -> None:
        found = self._branches.get(key)
        if found is None:
            return
        ctx, branch = found
        if branch.state is BranchState.DONE:
            return
        # RFC 3263 §4.3: a timeout or transport failure moves on to the next resolved peer.
        if branch.has_next_peer and not branch.cancelled:
            self._failover(ctx, branch, now)
            return
        self._finish_branch(ctx, branch, make_response(ctx.request, status, to_tag=self.ids.tag()))
        self._check_complete(ctx, now)

    def _on_terminated(self, key: str) -> None:
        if key in self._branches:
            del self._branches[key]
        context = self._contexts.get(key)
        if context is not None:
            self._closed_servers.add(key)
        self._maybe_close(key)

    def _maybe_close(self, key: str) -> None:
        context = self._contexts.get(key)
        if context is None or key not in self._closed_servers or context.live_branches():
            return
        del self._contexts[key]
        self._closed_servers.discard(key)
        self._events.append(ContextClosed(key))

    # -- branches ------------------------------------------------------------------

    def _start_group(self, ctx: ResponseContext, group: list[Target], now: float) -> None:
        for target in group:
            branch = Branch(target, ctx.branch_count())
            ctx.branches.append(branch)
            self._send_branch(ctx, branch, now)
        if ctx.ring_timeout is not None:
            ctx.ring_deadline = now + ctx.ring_timeout
            self._push(ctx.ring_deadline, _RING, ctx.key, 0)

    def _send_branch(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        suffix = f"{branch.index}.{branch.peer_index}"
        copy = forward_copy(
            ctx.request,
            branch.target.uri,
            branch.peer,
            ctx.source.transport,
            self.config,
            suffix=suffix,
        )
        key = self.layer.send_request(copy, branch.peer, now=now)
        branch.key = key
        self._branches[key] = (ctx, branch)
        if ctx.request.method == "INVITE":
            self._set_timer_c(ctx, branch, now)

    def _failover(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        branch.peer_index += 1
        branch.state = BranchState.PENDING
        self._send_branch(ctx, branch, now)

    def _set_timer_c(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        # RFC 3261 §16.6 step 11: Timer C guards every INVITE branch (more than 3 minutes).
        branch.timer_c = now + self.config.timers.timer_c
        self._push(branch.timer_c, _TIMER_C, ctx.key, branch.index)

    def _push(self, deadline: float, kind: str, ctx_key: str, index: int) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, kind, ctx_key, index))

    def _finish_branch(self, ctx: ResponseContext, branch: Branch, response: Response) -> None:
        branch.state = BranchState.DONE
        branch.final = response
        branch.timer_c = None
        if response.status >= 300:
            ctx.stored.append(response)

    def _cancel_live(self, ctx: ResponseContext, now: float) -> None:
        for branch in ctx.live_branches():
            self._cancel_branch(ctx, branch, now)

    def _cancel_branch(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        if branch.cancelled:
            return
        branch.cancelled = True
        if ctx.request.method == "INVITE":
            # RFC 3261 §16.10 / §9.1: CANCEL goes out once the branch has had a provisional.
            self.layer.request_cancel(branch.key, now=now)

    def _on_ring_timeout(self, ctx: ResponseContext, now: float) -> None:
        ctx.ring_deadline = None
        for branch in ctx.live_branches():
            self._cancel_branch(ctx, branch, now)
            self._finish_branch(ctx, branch, make_response(ctx.request, 408, to_tag=self.ids.tag()))
        self._check_complete(ctx, now)

    def _on_timer_c(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        # RFC 3261 §16.8: Timer C fired: CANCEL a ringing branch, treat the branch as 408.
        self._cancel_branch(ctx, branch, now)
        self._finish_branch(ctx, branch, make_response(ctx.request, 408, to_tag=self.ids.tag()))
        self._check_complete(ctx, now)

    def _check_complete(self, ctx: ResponseContext, now: float) -> None:
        if ctx.live_branches() or ctx.answered or not ctx.proxying:
            self._maybe_close(ctx.key)
            return
        if ctx.groups and not ctx.six_xx and not ctx.caller_cancelled:
            group = ctx.groups.pop(0)
            self._start_group(ctx, group, now)
            return
        ctx.proxying = False
        ctx.ring_deadline = None
        status, chosen = best_response(ctx.stored)
        if chosen is None:
            response = make_response(ctx.request, status, to_tag=self.ids.tag())
        else:
            response = chosen.copy()
            if status != chosen.status:
                response.status, response.reason = status, reason_phrase(status)
            merge_challenges(response, ctx.stored)
        forwarded = False
        if (ctx.forward_final or ctx.caller_cancelled) and not ctx.final_sent:
            self.layer.send_response(ctx.key, response, now=now)
            ctx.final_sent = True
            forwarded = True
        self._events.append(ProxyCompleted(ctx.key, ctx.request, status, response, forwarded))
        self._maybe_close(ctx.key)

    # -- stateless forwarding (RFC 3261 §16.11) ----------------------------------------

    def _forward_ack(self, ack: Request) -> None:
        if ack.method != "ACK":
            return
        preprocess_route(ack, self.config)
        hop = next_hop(ack)
        if self.config.is_local(hop) and "Route" not in ack:
            return
        copy = ack.copy()
        max_forwards = copy.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            return
        copy["Max-Forwards"] = 70 if max_forwards is None else max_forwards - 1
        transport = (hop.transport or "udp").upper()
        host, port = self.config.via_for(transport)
        copy.insert(
            "Via", Via(transport, host, port, {"branch": stateless_branch(ack), "rport": None})
        )
        self._events.append(ForwardNeeded(copy, hop))

    def _forward_stray(self, response: Response) -> None:
        # RFC 3261 §16.11: a response matching no transaction goes to the next Via if ours is on top.
        vias = response.via
        if len(vias) < 2 or not self._is_our_via(vias[0]):
            return
        response.pop("Via")
        via = vias[1]
        host = via.received or via.host
        port = via.rport or via.port
        uri = URI("sip", host=host, port=port, params={"transport": via.transport.lower()})
        self._events.append(ForwardNeeded(response, uri))

    def _is_our_via(self, via: Via) -> bool:
        return (
            via.host.lower() in self.config.local_hosts
            and (via.port or 5060) in self.config.local_ports
        )
