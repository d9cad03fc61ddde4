"""Forking and response processing of a stateful proxy (RFC 3261 §16.6-§16.8, RFC 3263 §4.3).

Theory of operation
-------------------
:class:`Forking` owns every branch of every response context. ``start``
forks the first target group (the targets of a group in parallel); the next
group starts only once every branch of the previous one failed, and never
after a 6xx or the caller's CANCEL. Each branch is one client transaction; a
timeout, transport error or 503 moves it to the target's next peer (RFC 3263
§4.3) with a new branch id. Responses are processed per §16.7: provisionals
and every 2xx go upstream at once; a 2xx, a 6xx or a final response sent by
the engine cancels the other branches; when all branches failed the best
response goes upstream (or, with ``forward_final`` off, only to the engine as
:class:`ProxyCompleted`).

Timers share one heap with lazy deletion (an entry is live while the state
it was armed for still holds):

- ring timeout, per group: the branches still live are cancelled and count as 408.
- Timer C, per INVITE branch (§16.6 step 11), restarted by provisionals (§16.7
  step 2); when it fires the branch is cancelled and counts as 408 (§16.8).
- cancel guard, 64*T1 after a branch was cancelled: a client transaction that
  never got its final response is given up (§9.1).

Whenever a context may be finished, ``on_idle(ctx)`` lets the core close it.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Callable

from callscript.sip.events import Peer
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
from callscript.sip.proxy.events import ProxyCompleted, ProxyEvent
from callscript.sip.proxy.forward import forward_copy
from callscript.sip.receive import request_transport
from callscript.sip.reply import make_response
from callscript.sip.transaction.layer import TransactionLayer


class _Timer(enum.Enum):
    RING = "ring timeout"
    C = "Timer C"
    GUARD = "cancel guard"


# (deadline, sequence, kind, context, branch, client key); the sequence breaks every tie.
_Entry = tuple[float, int, _Timer, ResponseContext, Branch | None, str]


class Forking:
    """The branches of every response context, their responses and timers.

    Args:
        events: where :class:`ProxyCompleted` goes (the core's event queue).
        on_idle: called with a context whose branches may all be over.
    """

    def __init__(
        self,
        config: ProxyConfig,
        ids: IdSource,
        layer: TransactionLayer,
        events: deque[ProxyEvent],
        on_idle: Callable[[ResponseContext], None],
    ) -> None:
        self.config = config
        self.ids = ids
        self.layer = layer
        self.events = events
        self.on_idle = on_idle
        # Client transaction key -> its branch, until the transaction terminates.
        self.branches: dict[str, tuple[ResponseContext, Branch]] = {}
        self._timers: list[_Entry] = []
        self._seq = 0

    # -- the core's calls ---------------------------------------------------------------

    def start(
        self,
        ctx: ResponseContext,
        groups: list[list[Target]],
        *,
        ring_timeout: float | None,
        final: bool,
        now: float,
    ) -> None:
        """Fork ``ctx`` to the first of ``groups`` (non-empty groups, at least one)."""
        ctx.groups = groups[1:]
        ctx.forward_final = final
        ctx.ring_timeout = ring_timeout
        ctx.stored = []
        ctx.six_xx = False
        ctx.proxying = True
        self._start_group(ctx, groups[0], now)

    def on_response(self, key: str, response: Response, now: float) -> None:
        """A response arrived in client transaction ``key`` (ignored when not a branch)."""
        found = self.branches.get(key)
        if found is None:
            return
        ctx, branch = found
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
            self.cancel_live(ctx, now)
        self._check_complete(ctx, now)

    def on_failure(self, key: str, status: int, now: float) -> None:
        """Client transaction ``key`` timed out (408) or could not send (503)."""
        found = self.branches.get(key)
        if found is None:
            return
        ctx, branch = found
        if branch.state is BranchState.DONE or branch.key != key:
            return
        # RFC 3263 §4.3: a timeout or transport failure moves on to the next resolved peer.
        if branch.has_next_peer and not branch.cancelled:
            self._failover(ctx, branch, now)
            return
        self._finish_branch(ctx, branch, self._made_up(ctx, status))
        self._check_complete(ctx, now)

    def forget(self, key: str) -> None:
        """Client transaction ``key`` terminated."""
        self.branches.pop(key, None)

    def transport_error(self, peer: Peer, now: float) -> None:
        """Sending to ``peer`` failed: the live branches waiting on it fail (RFC 3263 §4.3)."""
        for key, (_ctx, branch) in list(self.branches.items()):
            if (
                branch.key == key
                and branch.state is not BranchState.DONE
                and branch.peer.transport == peer.transport
                and branch.peer.address == peer.address
            ):
                self.layer.handle_transport_error(key, now=now)

    def cancel_live(self, ctx: ResponseContext, now: float) -> None:
        """CANCEL every branch of ``ctx`` still waiting for its final response."""
        for branch in ctx.live_branches():
            self._cancel_branch(ctx, branch, now)

    def handle_timers(self, now: float) -> None:
        """Fire the timers due at ``now``."""
        while self._timers and self._timers[0][0] <= now:
            entry = heapq.heappop(self._timers)
            if self._live(entry):
                self._fire(entry, now)

    def next_deadline(self) -> float | None:
        """The earliest live timer, or ``None``."""
        while self._timers and not self._live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def __len__(self) -> int:
        """The number of timers waiting in the heap (live or not yet discarded)."""
        return len(self._timers)

    # -- responses ----------------------------------------------------------------------

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
        self.cancel_live(ctx, now)
        if first and ctx.proxying:
            ctx.proxying = False
            self.events.append(
                ProxyCompleted(ctx.key, ctx.request, response.status, response, True)
            )

    def _check_complete(self, ctx: ResponseContext, now: float) -> None:
        if ctx.live_branches() or ctx.answered or not ctx.proxying:
            self.on_idle(ctx)
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
            response = self._made_up(ctx, status)
        else:
            response = chosen.copy()
            merge_challenges(response, [r for r in ctx.stored if r is not chosen])
        forwarded = False
        if (ctx.forward_final or ctx.caller_cancelled) and not ctx.final_sent:
            self.layer.send_response(ctx.key, response, now=now)
            ctx.final_sent = True
            forwarded = True
        self.events.append(ProxyCompleted(ctx.key, ctx.request, status, response, forwarded))
        self.on_idle(ctx)

    def _made_up(self, ctx: ResponseContext, status: int) -> Response:
        return make_response(ctx.request, status, to_tag=self.ids.tag())

    # -- branches -----------------------------------------------------------------------

    def _start_group(self, ctx: ResponseContext, group: list[Target], now: float) -> None:
        for target in group:
            branch = Branch(target, ctx.branch_count())
            ctx.branches.append(branch)
            self._send_branch(ctx, branch, now)
        if ctx.ring_timeout is not None:
            ctx.ring_deadline = now + ctx.ring_timeout
            self._push(ctx.ring_deadline, _Timer.RING, ctx, None, "")

    def _send_branch(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        peer = branch.peer
        copy = self._copy_for(ctx, branch, peer)
        # RFC 3261 §18.1.1: a request larger than 1300 bytes goes over TCP instead of UDP.
        if peer.transport == "UDP" and request_transport(len(bytes(copy)), peer) == "TCP":
            peer = Peer("TCP", peer.host, peer.port)
            copy = self._copy_for(ctx, branch, peer)
        key = self.layer.send_request(copy, peer, now=now)
        branch.key = key
        self.branches[key] = (ctx, branch)
        if ctx.request.method == "INVITE":
            self._set_timer_c(ctx, branch, now)

    def _copy_for(self, ctx: ResponseContext, branch: Branch, peer: Peer) -> Request:
        return forward_copy(
            ctx.request,
            branch.target.uri,
            peer,
            ctx.source.transport,
            self.config,
            suffix=f"{branch.index}.{branch.peer_index}",
            loop=ctx.loop_hash,
        )

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

    def _cancel_branch(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        if branch.cancelled:
            return
        branch.cancelled = True
        if ctx.request.method == "INVITE":
            # RFC 3261 §9.1: the layer sends the CANCEL once the branch has had a provisional.
            self.layer.request_cancel(branch.key, now=now)
            self._push(now + self.config.timers.timeout, _Timer.GUARD, ctx, branch, branch.key)

    # -- timers -------------------------------------------------------------------------

    def _set_timer_c(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        # RFC 3261 §16.6 step 11: Timer C guards every INVITE branch (more than 3 minutes).
        branch.timer_c = now + self.config.timers.timer_c
        self._push(branch.timer_c, _Timer.C, ctx, branch, branch.key)

    def _push(
        self, deadline: float, kind: _Timer, ctx: ResponseContext, branch: Branch | None, key: str
    ) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, kind, ctx, branch, key))

    def _live(self, entry: _Entry) -> bool:
        deadline, _, kind, ctx, branch, key = entry
        if kind is _Timer.GUARD:
            return key in self.branches
        if kind is _Timer.RING:
            return ctx.ring_deadline == deadline
        return branch is not None and branch.timer_c == deadline

    def _fire(self, entry: _Entry, now: float) -> None:
        _, _, kind, ctx, branch, key = entry
        if kind is _Timer.RING:
            self._on_ring_timeout(ctx, now)
        elif branch is not None and kind is _Timer.C:
            self._on_timer_c(ctx, branch, now)
        elif branch is not None:
            self._on_cancel_guard(ctx, branch, key, now)

    def _on_ring_timeout(self, ctx: ResponseContext, now: float) -> None:
        ctx.ring_deadline = None
        for branch in ctx.live_branches():
            self._cancel_branch(ctx, branch, now)
            self._finish_branch(ctx, branch, self._made_up(ctx, 408))
        self._check_complete(ctx, now)

    def _on_timer_c(self, ctx: ResponseContext, branch: Branch, now: float) -> None:
        # RFC 3261 §16.8: Timer C fired: CANCEL a ringing branch; either way it counts as 408.
        self._cancel_branch(ctx, branch, now)
        self._finish_branch(ctx, branch, self._made_up(ctx, 408))
        self._check_complete(ctx, now)

    def _on_cancel_guard(self, ctx: ResponseContext, branch: Branch, key: str, now: float) -> None:
        if branch.received_final or key not in self.layer:
            return  # the transaction ends by its own timers
        # RFC 3261 §9.1: no final response 64*T1 after the CANCEL: the branch is given up.
        finished = branch.state is not BranchState.DONE
        if finished:
            self._finish_branch(ctx, branch, self._made_up(ctx, 408))
        self.layer.terminate(key)
        if finished:
            self._check_complete(ctx, now)
