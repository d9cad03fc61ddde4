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
gets :class:`RoutingNeeded`. ``proxy`` hands the context to
:class:`~callscript.sip.proxy.forking.Forking`, which forks the target
groups, processes the responses (§16.7) and runs the ring timeout, Timer C
and the cancel guard. A caller's CANCEL cancels every branch; with none
started yet the request ends with 487 at once.

ACKs for 2xx and responses that match no transaction are forwarded
statelessly (§16.11) once the engine has resolved their next hop
(:class:`ForwardNeeded`, then ``send_stateless``).

A context closes (:class:`ContextClosed`) when its server transaction has
terminated and no branch is live; by then nothing about it is left.
"""

from __future__ import annotations

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
    ResponseContext,
    Target,
)
from callscript.sip.proxy.events import (
    ContextClosed,
    ForwardNeeded,
    ProxyEvent,
    RequestCancelled,
    RoutingNeeded,
)
from callscript.sip.proxy.forking import Forking
from callscript.sip.proxy.route import is_in_dialog, preprocess_route
from callscript.sip.proxy.stateless import ack_to_forward, retarget_via, stray_to_forward
from callscript.sip.proxy.validate import loop_hash, validate_request
from callscript.sip.reply import make_response
from callscript.sip.transaction.layer import TransactionLayer, forget_parsed


class ProxyCore:
    """A stateful proxy steered by an engine; see the module docstring."""

    def __init__(
        self, config: ProxyConfig, ids: IdSource, layer: TransactionLayer | None = None
    ) -> None:
        self.config = config
        self.ids = ids
        self.layer = layer or TransactionLayer(timers=config.timers)
        self._contexts: dict[str, ResponseContext] = {}
        self._events: deque[ProxyEvent] = deque()
        self._closed_servers: set[str] = set()
        self._forking = Forking(config, ids, self.layer, self._events, self._on_idle)

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
        self._forking.transport_error(peer, now)
        self._drain(now)

    def handle_timers(self, *, now: float) -> None:
        """Fire every timer due at ``now``."""
        self.layer.handle_timers(now=now)
        self._drain(now)
        self._forking.handle_timers(now)
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
        own = self._forking.next_deadline()
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
            self._forking.cancel_live(context, now)
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
        self._forking.start(context, groups, ring_timeout=ring_timeout, final=final, now=now)
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
                    self._forking.on_response(key, response, now)
                case TransactionTimedOut(key=key):
                    self._forking.on_failure(key, 408, now)
                case TransportFailed(key=key):
                    self._forking.on_failure(key, 503, now)
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
            self._forking.cancel_live(context, now)
            return
        # RFC 3261 §16.10: nothing is pending downstream, so the request ends with 487 now.
        response = make_response(context.request, 487, to_tag=self.ids.tag())
        self.layer.send_response(context.key, response, now=now)
        context.final_sent = True
        context.proxying = False

    def _on_terminated(self, key: str) -> None:
        self._forking.forget(key)
        context = self._contexts.get(key)
        if context is not None:
            self._closed_servers.add(key)
            self._on_idle(context)

    def _on_idle(self, context: ResponseContext) -> None:
        # A context closes once its server transaction has terminated and no branch is live.
        key = context.key
        if context.live_branches():
            return
        if context.final_sent:
            # Answered and nothing pending: only late 2xx and retransmissions can still come,
            # for up to 64*T1. Keep the context small meanwhile (the GC walks every object).
            context.stored = []
            for branch in context.branches:
                branch.final = None
            forget_parsed(context.request)
        if key not in self._closed_servers:
            return
        del self._contexts[key]
        self._closed_servers.discard(key)
        self._events.append(ContextClosed(key))

    # -- stateless forwarding (RFC 3261 §16.11) ----------------------------------------

    def _forward_ack(self, ack: Request) -> None:
        found = ack_to_forward(ack, self.config)
        if found is not None:
            self._events.append(ForwardNeeded(*found))

    def _forward_stray(self, response: Response) -> None:
        found = stray_to_forward(response, self.config)
        if found is not None:
            self._events.append(ForwardNeeded(*found))
