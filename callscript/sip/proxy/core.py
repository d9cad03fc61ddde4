"""The stateful proxy core (RFC 3261 §16), sans-I/O.

Theory of operation
-------------------
Inputs: received requests and responses (already parsed, §18.2.1 applied),
``handle_timers(now=)``, transport errors, and the engine's decisions
(``reply``, ``respond``, ``proxy``, ``forward_best``, ``send_stateless``).
Outputs, drained by the adapter: ``messages_to_send()``, ``next_event()``,
``next_deadline()``.

Every new request creates a server transaction (in the transaction layer).
Validation (§16.3) answers what cannot go on; a CANCEL is matched to its
INVITE (§16.10). Any other request gets a :class:`ResponseContext`, route
preprocessing (§16.4) and, for INVITE, a 100 Trying (§16.2); then the engine
gets :class:`RoutingNeeded`. ``proxy`` forks target groups: the targets of a
group in parallel, the next group only once every branch of the previous one
failed without a 6xx. A branch whose peer fails (timeout, transport error,
503) moves on to the target's next peer (RFC 3263 §4.3). Responses are
processed per §16.7: provisionals and every 2xx go upstream at once, a 2xx
or 6xx cancels the other branches, and when all branches failed the best
response goes upstream (or, with ``final=False``, to the engine as
:class:`ProxyCompleted`). A caller's CANCEL cancels every branch.

ACKs for 2xx and responses that match no transaction are forwarded
statelessly (§16.11) once the engine has resolved their next hop
(:class:`ForwardNeeded`, then ``send_stateless``).

Timers of the core itself share one heap with lazy deletion (the
transaction layer keeps its own):

- ring: per group; when it fires, the ringing branches are cancelled and count as 408.
- C: per INVITE branch (§16.6 step 11), restarted by provisionals; see §16.8.
- cancel guard: 64*T1 after a branch was cancelled, a client transaction
  that never got its final response is given up (§9.1).

A context closes (:class:`ContextClosed`) when its server transaction has
terminated and no branch is live; by then nothing about it is left.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Iterable

from callscript.sip.errors import LocalProtocolError, ParseError
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
from callscript.sip.proxy.forward import forward_copy
from callscript.sip.proxy.route import is_in_dialog, preprocess_route
from callscript.sip.proxy.stateless import ack_to_forward, retarget_via, stray_to_forward
from callscript.sip.proxy.validate import loop_hash, validate_request
from callscript.sip.reply import make_response
from callscript.sip.transaction.layer import TransactionLayer


class _Timer(enum.Enum):
    RING = "ring timeout"
    C = "Timer C"
    GUARD = "cancel guard"


# (deadline, sequence, kind, context key or client key, branch index)
_Entry = tuple[float, int, _Timer, str, int]


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
        self._timers: list[_Entry] = []
        self._seq = 0
        self._closed_servers: set[str] = set()

    # -- inputs from the network -------------------------------------------------------

    def handle_request(self, request: Request, source: Peer, *, now: float) -> None:
        """A request arrived from ``source``.

        Raises:
            ParseError: the request lacks what transaction matching reads (Via,
                CSeq...); the adapter answers or drops it.
        """
        self.layer.handle_request(request, source, now=now)
        self._drain(now)

    def handle_response(self, response: Response, source: Peer, *, now: float) -> None:
        """A response arrived from ``source``.

        Raises:
            ParseError: the response has no readable top Via or CSeq; drop it.
        """
        self.layer.handle_response(response, source, now=now)
        self._drain(now)

    def handle_transport_error(self, peer: Peer, *, now: float) -> None:
        """Sending to ``peer`` failed: every branch waiting on it fails over (RFC 3263 §4.3)."""
        for key, (_ctx, branch) in list(self._branches.items()):
            if (
                branch.key == key
                and branch.state is not BranchState.DONE
                and branch.peer.transport == peer.transport
                and branch.peer.address == peer.address
            ):
                self.layer.handle_transport_error(key, now=now)
        self._drain(now)

    def handle_timers(self, *, now: float) -> None:
        """Fire every timer due at ``now``."""
        self.layer.handle_timers(now=now)
        self._drain(now)
        while self._timers and self._timers[0][0] <= now:
            entry = heapq.heappop(self._timers)
            if self._timer_live(entry):
                self._fire(entry, now)
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

    def context(self, ctx: str) -> ResponseContext | None:
        """The response context ``ctx``, while it lives."""
        return self._contexts.get(ctx)

    def __len__(self) -> int:
        """The number of live response contexts."""
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
        """Answer request ``ctx`` with a response built from it (a To tag is added).

        Raises:
            KeyError: no live context ``ctx``.
        """
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
        """Send ``response`` in request ``ctx``'s server transaction.

        Once a final response went upstream, anything more from the engine is
        dropped. A final response ends the proxying: live branches are cancelled
        and no further group starts.

        Raises:
            KeyError: no live context ``ctx``.
        """
        context = self._contexts[ctx]
        if context.final_sent:
            return
        self.layer.send_response(ctx, response, now=now)
        if response.status >= 200:
            context.final_sent = True
            context.groups = []
            context.proxying = False
            context.ring_deadline = None
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

        Does nothing once the request has its final response or was cancelled.

        Args:
            groups: tried one after the other; the targets of a group in parallel.
            ring_timeout: seconds each group may ring before its branches are cancelled.
            final: forward the best response to the caller when all fail; when
                false the engine gets :class:`ProxyCompleted` and decides.

        Raises:
            KeyError: no live context ``ctx``.
            ValueError: no target at all.
            LocalProtocolError: branches of an earlier ``proxy`` call are still live.
        """
        context = self._contexts[ctx]
        groups = [list(group) for group in groups if group]
        if not groups:
            raise ValueError("proxy() needs at least one target")
        if context.final_sent or context.caller_cancelled:
            return
        if context.live_branches():
            raise LocalProtocolError(f"{ctx} is already being proxied")
        context.groups = groups[1:]
        context.forward_final = final
        context.ring_timeout = ring_timeout
        context.stored = []
        context.six_xx = False
        context.proxying = True
        self._start_group(context, groups[0], now)
        self._drain(now)

    def forward_best(self, ctx: str, response: Response, *, now: float) -> None:
        """Forward the response a non-final ``proxy`` call ended with."""
        self.respond(ctx, response, now=now)

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send a message of a :class:`ForwardNeeded` event to its resolved peer."""
        retarget_via(message, peer, self.config)
        self.layer.send_stateless(message, peer)

    # -- transaction layer events ------------------------------------------------------

    def _drain(self, now: float) -> None:
        layer = self.layer
        while (event := layer.next_event()) is not None:
            match event:
                case RequestReceived(key=None, request=request):
                    self._forward_ack(request)
                case RequestReceived(key=str() as key, request=request, source=source):
                    self._on_request(key, request, source, now)
                case ResponseReceived(key=None, response=response):
                    self._forward_stray(response)
                case ResponseReceived(key=str() as key, response=response):
                    found = self._branches.get(key)
                    if found is not None:
                        self._on_response(found[0], found[1], key, response, now)
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
            self._send_error(key, error, now)
            return
        if request.method == "CANCEL":
            self._on_cancel(key, request, now)
            return
        # The loop hash covers the request as it arrived, before §16.4 rewrites it.
        context = ResponseContext(key, request, source, loop_hash=loop_hash(request))
        preprocess_route(request, self.config)
        if request.method == "INVITE":
            # RFC 3261 §16.2: a stateful proxy answers an INVITE with 100 Trying at once.
            self.layer.send_response(key, make_response(request, 100), now=now)
        self._contexts[key] = context
        self._events.append(RoutingNeeded(key, request, source, is_in_dialog(request)))

    def _send_error(self, key: str, error: Response, now: float) -> None:
        try:
            to = error.to_addr
        except ParseError:
            to = None  # an unreadable To gets no tag; the response still says what is wrong
        if to is not None and to.tag is None:
            error["To"] = to.with_params(tag=self.ids.tag())
        self.layer.send_response(key, error, now=now)

    def _on_cancel(self, key: str, cancel: Request, now: float) -> None:
        invite_key = self.layer.find_invite(cancel)
        context = self._contexts.get(invite_key) if invite_key is not None else None
        if context is None:
            # DEVIATION RFC 3261 §16.10: the RFC forwards a CANCEL without a response context
            # statelessly. This proxy keeps a context for every request it forwards, so there is
            # nothing downstream to cancel: 481 tells the caller at once.
            self._send_error(key, make_response(cancel, 481), now)
            return
        # RFC 3261 §16.10: a CANCEL matching a response context is answered 200 at once.
        self._send_error(key, make_response(cancel, 200), now)
        if context.caller_cancelled or context.final_sent:
            return
        context.caller_cancelled = True
        context.groups = []
        self._events.append(RequestCancelled(context.key))
        if context.live_branches():
            self._cancel_live(context, now)
            return
        # RFC 3261 §16.10: nothing is pending downstream, so the request ends with 487 now.
        response = make_response(context.request, 487, to_tag=self.ids.tag())
        self.layer.send_response(context.key, response, now=now)
        context.final_sent = True
        context.proxying = False

    def _on_response(
        self, ctx: ResponseContext, branch: Branch, key: str, response: Response, now: float
    ) -> None:
        # RFC 3261 §16.7 step 3: remove our Via before anything else.
        response.pop("Via")
        if "Via" not in response:
            # DEVIATION RFC 3261 §16.7 step 3: with no Via left the RFC drops the response. It
            # matched our branch, so it answers the request we forwarded; a callee that echoed
            # only our Via (sipp's regexp captures do) still reaches the caller, with the
            # Vias of the request as it came.
            response["Via"] = ctx.request.via
        status = response.status
        if key != branch.key and status // 100 != 2:
            return  # an attempt that RFC 3263 failover replaced; only its 2xx still matters
        if status < 200:
            self._on_provisional(ctx, branch, response, now)
            return
        branch.received_final = key == branch.key
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

    def _on_provisional(
        self, ctx: ResponseContext, branch: Branch, response: Response, now: float
    ) -> None:
        if branch.state is BranchState.DONE or response.status == 100:
            return
        branch.state = BranchState.RINGING
        if branch.timer_c is not None:
            # RFC 3261 §16.7 step 2: a provisional response above 100 restarts Timer C.
            self._set_timer_c(ctx, branch, now)
        # RFC 3261 §16.7 step 5: provisional responses other than 100 go upstream at once.
        if not ctx.final_sent:
            self.layer.send_response(ctx.key, response, now=now)

    def _on_success(
        self, ctx: ResponseContext, branch: Branch, response: Response, now: float
    ) -> None:
        first = not ctx.answered
        if branch.state is not BranchState.DONE:
            self._finish_branch(ctx, branch, response)
        ctx.answered = True
        ctx.ring_deadline = None
        ctx.groups = []
        if ctx.request.method == "INVITE" or not ctx.final_sent:
            # RFC 3261 §16.7 step 5: every 2xx to INVITE goes upstream at once, even after another.
            self.layer.send_response(ctx.key, response, now=now)
        ctx.final_sent = True
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
        if branch.state is BranchState.DONE or branch.key != key:
            return
        # RFC 3263 §4.3: a timeout or transport failure moves on to the next resolved peer.
        if branch.has_next_peer and not branch.cancelled:
            self._failover(ctx, branch, now)
            return
        self._finish_branch(ctx, branch, make_response(ctx.request, status, to_tag=self.ids.tag()))
        self._check_complete(ctx, now)

    def _on_terminated(self, key: str) -> None:
        self._branches.pop(key, None)
        if key in self._contexts:
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
            self._push(ctx.ring_deadline, _Timer.RING, ctx.key, 0)

    def _send_branch(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        copy = forward_copy(
            ctx.request,
            branch.target.uri,
            branch.peer,
            ctx.source.transport,
            self.config,
            suffix=f"{branch.index}.{branch.peer_index}",
            loop=ctx.loop_hash,
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
            # RFC 3261 §9.1: the layer sends the CANCEL once the branch has had a provisional.
            self.layer.request_cancel(branch.key, now=now)
            self._push(now + self.config.timers.timeout, _Timer.GUARD, branch.key, 0)

    def _check_complete(self, ctx: ResponseContext, now: float) -> None:
        if ctx.live_branches() or ctx.answered or not ctx.proxying:
            self._maybe_close(ctx.key)
            return
        if ctx.groups and not ctx.caller_cancelled:
            # The next group starts only once every branch of this one has failed (no 6xx).
            self._start_group(ctx, ctx.groups.pop(0), now)
            return
        ctx.proxying = False
        ctx.ring_deadline = None
        status, chosen = best_response(ctx.stored)
        if chosen is None or status != chosen.status:
            # RFC 3261 §16.7 step 6: no response means 408, a 503 means a 500 of our own.
            response = make_response(ctx.request, status, to_tag=self.ids.tag())
        else:
            response = chosen.copy()
            merge_challenges(response, [r for r in ctx.stored if r is not chosen])
        forwarded = False
        if (ctx.forward_final or ctx.caller_cancelled) and not ctx.final_sent:
            self.layer.send_response(ctx.key, response, now=now)
            ctx.final_sent = True
            forwarded = True
        self._events.append(ProxyCompleted(ctx.key, ctx.request, status, response, forwarded))
        self._maybe_close(ctx.key)

    # -- timers --------------------------------------------------------------------

    def _set_timer_c(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        # RFC 3261 §16.6 step 11: Timer C guards every INVITE branch (more than 3 minutes).
        branch.timer_c = now + self.config.timers.timer_c
        self._push(branch.timer_c, _Timer.C, ctx.key, branch.index)

    def _push(self, deadline: float, kind: _Timer, ref: str, index: int) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, kind, ref, index))

    def _timer_live(self, entry: _Entry) -> bool:
        deadline, _, kind, ref, index = entry
        if kind is _Timer.GUARD:
            return ref in self._branches
        ctx = self._contexts.get(ref)
        if ctx is None:
            return False
        if kind is _Timer.RING:
            return ctx.ring_deadline == deadline
        return index < len(ctx.branches) and ctx.branches[index].timer_c == deadline

    def _fire(self, entry: _Entry, now: float) -> None:
        _, _, kind, ref, index = entry
        if kind is _Timer.GUARD:
            self._on_cancel_guard(ref, now)
            return
        ctx = self._contexts[ref]
        if kind is _Timer.RING:
            self._on_ring_timeout(ctx, now)
        else:
            self._on_timer_c(ctx, ctx.branches[index], now)

    def _on_ring_timeout(self, ctx: ResponseContext, now: float) -> None:
        ctx.ring_deadline = None
        for branch in ctx.live_branches():
            self._cancel_branch(ctx, branch, now)
            self._finish_branch(ctx, branch, make_response(ctx.request, 408, to_tag=self.ids.tag()))
        self._check_complete(ctx, now)

    def _on_timer_c(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        # RFC 3261 §16.8: Timer C fired: CANCEL a ringing branch; either way it counts as 408.
        self._cancel_branch(ctx, branch, now)
        self._finish_branch(ctx, branch, make_response(ctx.request, 408, to_tag=self.ids.tag()))
        self._check_complete(ctx, now)

    def _on_cancel_guard(self, key: str, now: float) -> None:
        ctx, branch = self._branches[key]
        if branch.received_final or key not in self.layer:
            return  # the transaction ends by its own timers
        # RFC 3261 §9.1: no final response 64*T1 after the CANCEL: the branch is given up.
        finished = branch.state is not BranchState.DONE
        if finished:
            self._finish_branch(ctx, branch, make_response(ctx.request, 408, to_tag=self.ids.tag()))
        # The layer ends a client transaction only on its own events; a transport error is the
        # one input that terminates it in Proceeding. Its TransportFailed finds the branch done.
        self.layer.handle_transport_error(key, now=now)
        if finished:
            self._check_complete(ctx, now)

    # -- stateless forwarding (RFC 3261 §16.11) ----------------------------------------

    def _forward_ack(self, ack: Request) -> None:
        found = ack_to_forward(ack, self.config)
        if found is not None:
            self._events.append(ForwardNeeded(*found))

    def _forward_stray(self, response: Response) -> None:
        found = stray_to_forward(response, self.config)
        if found is not None:
            self._events.append(ForwardNeeded(*found))
