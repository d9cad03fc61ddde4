"""The server's default routing: registrar, digest auth, location lookup, relay policy.

RFC 3261 §10.3 (registrar), §16.5 (targets from the location service),
§22 (digest), RFC 3263 (next hops in other domains). Each new request gets a
task; the task decides and calls the proxy core through the driver. A later
layer (per-user scripts) asks :class:`Router` for the same decisions.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from callscript.engine.driver import Driver
from callscript.engine.scripted import ScriptedCall, ScriptSettings, outcome_of
from callscript.engine.scripthost import ScriptHost
from callscript.metrics import Metrics, status_class
from callscript.sip.auth import AuthStatus, DigestServer
from callscript.sip.events import Peer
from callscript.sip.ids import IdSource
from callscript.sip.message import Request, Response
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.context import Target
from callscript.sip.proxy.events import (
    ContextClosed,
    ForwardNeeded,
    ProxyCompleted,
    ProxyEvent,
    RequestCancelled,
    RoutingNeeded,
)
from callscript.sip.proxy.route import next_hop
from callscript.sip.registrar import RegistrarPolicy, decide_register, ok_response
from callscript.sip.uri import URI
from callscript.store.base import AccountStore, Binding, LocationStore
from callscript.store.calllog import CallLog
from callscript.transport.resolver import Resolver

log = logging.getLogger("callscript.calls")

ALLOW = (
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "REGISTER",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "INFO",
    "UPDATE",
    "PRACK",
)


@dataclass(frozen=True)
class RoutingPolicy:
    """Who may do what: the relay rule and the registrar's limits."""

    trusted_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    register_requires_auth: bool = True
    ring_timeout: float = 30.0
    registrar: RegistrarPolicy = field(default_factory=RegistrarPolicy)

    def trusted(self, peer: Peer) -> bool:
        """Whether ``peer`` is in a trusted source network."""
        try:
            address = ipaddress.ip_address(peer.host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    @functools.cached_property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The trusted networks, parsed once."""
        return tuple(ipaddress.ip_network(net, strict=False) for net in self.trusted_networks)


class Router:
    """Routes every request the proxy core hands over (see module docstring)."""

    def __init__(
        self,
        driver: Driver,
        proxy_config: ProxyConfig,
        policy: RoutingPolicy,
        *,
        location: LocationStore,
        accounts: AccountStore,
        auth_for: Callable[[str], DigestServer],
        resolver: Resolver,
        ids: IdSource,
        wall_clock: Callable[[], float] = time.time,
        scripts: ScriptHost | None = None,
        script_settings: ScriptSettings | None = None,
        metrics: Metrics | None = None,
        call_log: CallLog | None = None,
    ) -> None:
        self.driver = driver
        self.core = driver.core
        self.config = proxy_config
        self.policy = policy
        self.location = location
        self.accounts = accounts
        self.auth_for = auth_for
        self.resolver = resolver
        self.ids = ids
        self.wall_clock = wall_clock
        self.scripts = scripts
        self.script_settings = script_settings or ScriptSettings()
        self.metrics = metrics or Metrics()
        self.call_log = call_log
        self._arrived: dict[str, tuple[float, str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, asyncio.Future[ProxyCompleted]] = {}
        self._stateless: set[asyncio.Task[None]] = set()
        self.outcomes: dict[int, int] = {}

    # -- events from the core ------------------------------------------------------

    def dispatch(self, event: ProxyEvent) -> None:
        """Handle one event of the proxy core (called by the driver)."""
        match event:
            case RoutingNeeded(ctx=ctx):
                self._spawn(ctx, self.route(event))
            case ForwardNeeded():
                task = asyncio.ensure_future(self._forward_stateless(event))
                self._stateless.add(task)
                task.add_done_callback(self._stateless.discard)
            case ProxyCompleted(ctx=ctx, request=request, status=status, forwarded=forwarded):
                if forwarded:
                    self._log_outcome(request, status)
                waiter = self._waiters.pop(ctx, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)
            case RequestCancelled(ctx=ctx):
                routing = self._tasks.get(ctx)
                if routing is not None and not routing.done():
                    routing.cancel()
            case ContextClosed(ctx=ctx):
                self._tasks.pop(ctx, None)
                self._arrived.pop(ctx, None)
                waiter = self._waiters.pop(ctx, None)
                if waiter is not None and not waiter.done():
                    waiter.cancel()

    def _spawn(self, ctx: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(self._guard(ctx, work))
        self._tasks[ctx] = task
        # A finished task (and the request its frame holds) must not wait for ContextClosed.
        task.add_done_callback(functools.partial(self._forget_task, ctx))

    def _forget_task(self, ctx: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(ctx) is task:
            del self._tasks[ctx]

    async def _guard(self, ctx: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("routing failed for %s", ctx)
            self.reply(ctx, 500, "Server Internal Error (routing failed)")

    # -- actions on the core, through the driver -------------------------------------------

    def _decided(self, ctx: str) -> None:
        arrived = self._arrived.pop(ctx, None)
        if arrived is not None:
            started, kind = arrived
            self.metrics.observe(
                "callscript_proxy_decision_seconds", time.perf_counter() - started, kind=kind
            )

    def reply(self, ctx: str, status: int, reason: str | None = None, **kwargs: Any) -> None:
        """Answer request ``ctx`` and log the outcome when final."""
        self._decided(ctx)
        context = self.core.context(ctx)
        if context is None or context.final_sent:
            return
        self.core.reply(ctx, status, reason, now=self.driver.now, **kwargs)
        if status >= 200:
            self._log_outcome(context.request, status)
        self.driver.after_input()

    def respond(self, ctx: str, response: Response) -> None:
        """Send a response built elsewhere (a challenge, the registrar's) and log it when final."""
        self._decided(ctx)
        context = self.core.context(ctx)
        if context is None or context.final_sent:
            return
        self.core.respond(ctx, response, now=self.driver.now)
        if response.status >= 200:
            self._log_outcome(context.request, response.status)
        self.driver.after_input()

    def proxy(
        self,
        ctx: str,
        groups: list[list[Target]],
        *,
        ring_timeout: float | None,
        final: bool = True,
    ) -> None:
        """Fork request ``ctx`` to ``groups``."""
        self._decided(ctx)
        if self.core.context(ctx) is None:
            return
        self.core.proxy(ctx, groups, now=self.driver.now, ring_timeout=ring_timeout, final=final)
        self.driver.after_input()

    async def proxy_and_wait(
        self, ctx: str, groups: list[list[Target]], *, ring_timeout: float | None, final: bool
    ) -> ProxyCompleted | None:
        """Fork request ``ctx`` and wait for the outcome (``None`` when the request went away)."""
        if self.core.context(ctx) is None:
            return None
        waiter: asyncio.Future[ProxyCompleted] = asyncio.get_running_loop().create_future()
        self._waiters[ctx] = waiter
        self.proxy(ctx, groups, ring_timeout=ring_timeout, final=final)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.cancelled() and self.core.context(ctx) is None:
                return None
            raise

    def forward(self, ctx: str, response: Response) -> None:
        """Send the caller a response a non-final proxy attempt ended with."""
        context = self.core.context(ctx)
        if context is None or context.final_sent:
            return
        self.core.forward_best(ctx, response, now=self.driver.now)
        self._log_outcome(context.request, response.status)
        self.driver.after_input()

    async def resolve(self, uri: URI) -> tuple[Peer, ...]:
        """RFC 3263 targets for ``uri`` (numeric hosts and explicit ports need no DNS)."""
        return tuple(await self.resolver.resolve(uri))

    # -- routing -------------------------------------------------------------------------

    async def route(self, event: RoutingNeeded) -> None:
        """Decide what request ``event.ctx`` does: scripts first, then the default routing."""
        request, ctx, source = event.request, event.ctx, event.source
        self._arrived[ctx] = (time.perf_counter(), "default")
        if event.in_dialog:
            await self._route_in_dialog(ctx, request)
            return
        if request.method == "REGISTER":
            self._register(ctx, request, source)
            return
        if self.config.is_self(request.uri):
            self._answer_self(ctx, request)
            return
        local_caller = self.config.serves(request.from_addr.uri)
        trusted = self.policy.trusted(source)
        # RFC 3261 §22.3: a request claiming one of our users must prove it (407) unless trusted.
        if local_caller and not trusted and not self._authenticated_local(ctx, request):
            return
        for_us = self.config.serves(request.uri)
        if not (for_us or local_caller or trusted):
            # Never an open relay: strangers reach our users only.
            self.reply(ctx, 403, "Relaying denied")
            return
        if local_caller and await self._run_script(ctx, request, request.from_addr.uri, "outgoing"):
            return
        if for_us:
            if not await self._run_script(ctx, request, request.uri, "incoming"):
                await self.route_local(ctx, request)
        else:
            await self._relay(ctx, request)

    async def _run_script(self, ctx: str, request: Request, owner: URI, direction: str) -> bool:
        """Run the owner's script for ``request``; False when it leaves the call to default routing."""
        if self.scripts is None or request.method in ("ACK", "CANCEL"):
            return False
        script = self.scripts.lookup(owner)
        if script is None:
            return False
        if ctx in self._arrived:
            self._arrived[ctx] = (self._arrived[ctx][0], "script")
        self.metrics.inc("callscript_script_invocations_total", direction=direction)
        contacts = [b.contact for b in self.location.bindings(owner.aor, now=self.wall_clock())]
        call = ScriptedCall(
            self,
            self.scripts.pool,
            self.scripts.audit,
            self.script_settings,
            ctx=ctx,
            request=request,
            script=script,
            direction=direction,
            contacts=contacts,
            wall_clock=self.wall_clock,
            call_log=self.call_log,
        )
        disposition = await call.run()
        # Default: route as if there were no script (for an outgoing script: go on to the callee).
        return disposition is None

    def _answer_self(self, ctx: str, request: Request) -> None:
        if request.method == "OPTIONS":
            headers: list[tuple[str, object]] = [
                ("Allow", list(ALLOW)),
                ("Accept", "application/sdp"),
            ]
            self.reply(ctx, 200, headers=headers)
        else:
            self.reply(ctx, 405, headers=[("Allow", ["OPTIONS", "REGISTER"])])

    async def _route_in_dialog(self, ctx: str, request: Request) -> None:
        hop = next_hop(request)
        if self.config.is_local(hop) and "Route" not in request:
            # RFC 3261 §16.4: nothing left to route on; the dialog is not ours.
            self.reply(ctx, 481)
            return
        peers = await self.resolve(hop)
        if not peers:
            self.reply(ctx, 404, "Next hop not found")
            return
        self.proxy(ctx, [[Target(None, peers)]], ring_timeout=None)

    async def route_local(self, ctx: str, request: Request) -> None:
        """RFC 3261 §16.5: a request for a user of ours goes to the user's registered contacts."""
        aor = request.uri.aor
        bindings = self.location.bindings(aor, now=self.wall_clock())
        if not bindings:
            known = self._known_user(request.uri)
            self.reply(ctx, 480 if known else 404)
            return
        groups = await self.contact_groups(bindings)
        if not groups:
            self.reply(ctx, 480, "No reachable contact")
            return
        self.proxy(ctx, groups, ring_timeout=self.policy.ring_timeout)

    async def contact_groups(self, bindings: list[Binding]) -> list[list[Target]]:
        """Bindings grouped by q-value, highest first; the contacts of a group fork in parallel."""
        groups: dict[float, list[Target]] = {}
        for binding in bindings:
            uri = URI.parse(binding.contact)
            peers = await self.resolve(uri)
            if peers:
                groups.setdefault(binding.q, []).append(Target(uri, peers))
        return [groups[q] for q in sorted(groups, reverse=True)]

    def _known_user(self, uri: URI) -> bool:
        return (
            uri.user is not None
            and self.accounts.get(uri.user, self.auth_for(uri.host).realm) is not None
        )

    def _authenticated_local(self, ctx: str, request: Request) -> bool:
        """Digest-check a request from a local user; answers 407/403 itself when it fails."""
        now = self.wall_clock()
        auth = self.auth_for(request.from_addr.uri.host)
        result = auth.verify(request, now=now, lookup_ha1=self.accounts.ha1, proxy=True)
        if result.status is AuthStatus.OK:
            from_user = request.from_addr.uri.user
            if result.username == from_user:
                return True
            self.reply(ctx, 403, "Authenticated user does not match From")
            return False
        if result.status is AuthStatus.MALFORMED:
            self.reply(ctx, 400, f"Bad Proxy-Authorization ({result.reason})")
            return False
        if not self.config.serves(request.from_addr.uri):
            self.reply(ctx, 403, "Relaying denied")
            return False
        self._challenge(ctx, request, auth, proxy=True, stale=result.status is AuthStatus.STALE)
        return False

    def _challenge(
        self, ctx: str, request: Request, auth: DigestServer, *, proxy: bool, stale: bool
    ) -> None:
        self.respond(ctx, auth.challenge(request, now=self.wall_clock(), proxy=proxy, stale=stale))

    async def _relay(self, ctx: str, request: Request) -> None:
        hop = next_hop(request)
        peers = await self.resolve(hop)
        if not peers:
            self.reply(ctx, 404, "Domain not found")
            return
        self.proxy(ctx, [[Target(None, peers)]], ring_timeout=self.policy.ring_timeout)

    # -- registrar ------------------------------------------------------------------

    def _register(self, ctx: str, request: Request, source: Peer) -> None:
        if not self.config.serves(request.uri):
            self.reply(ctx, 403, "Not a domain served here")
            return
        # RFC 3261 §10.3 step 2: extensions we do not support in Require get 420.
        required = [str(v) for v in request.get_all("Require")]
        if required:
            self.reply(ctx, 420, headers=[("Unsupported", required)])
            return
        if self.policy.register_requires_auth:
            now = self.wall_clock()
            auth = self.auth_for(request.uri.host)
            result = auth.verify(request, now=now, lookup_ha1=self.accounts.ha1, proxy=False)
            if result.status is AuthStatus.MALFORMED:
                self.reply(ctx, 400, f"Bad Authorization ({result.reason})")
                return
            if result.status is not AuthStatus.OK:
                # RFC 3261 §10.3 step 3: the registrar authenticates the UAC (401).
                self._challenge(
                    ctx, request, auth, proxy=False, stale=result.status is AuthStatus.STALE
                )
                return
            # RFC 3261 §10.3 step 4: only the owner may change an address-of-record's bindings.
            if result.username != request.to_addr.uri.user:
                self.reply(ctx, 403, "Authenticated user may not register this address-of-record")
                return
        self._apply_register(ctx, request, source)

    def _apply_register(self, ctx: str, request: Request, source: Peer) -> None:
        now = self.wall_clock()
        to_uri = request.to_addr.uri
        aor = to_uri.aor if to_uri.is_sip else str(to_uri)
        current = self.location.bindings(aor, now=now) if to_uri.is_sip else []
        decision = decide_register(request, current, self.policy.registrar, tag=self.ids.tag())
        if decision.error is not None:
            self.respond(ctx, decision.error)
            return
        if decision.remove_all:
            self.location.remove_all(decision.aor)
        for contact in decision.removes:
            self.location.remove(decision.aor, contact)
        user_agent = request.get("User-Agent")
        for update in decision.saves:
            self.location.save(
                Binding(
                    aor=decision.aor,
                    contact=update.contact,
                    expires_at=now + update.expires,
                    call_id=request.call_id,
                    cseq=request.cseq.number,
                    q=update.q,
                    received=f"{source.transport}:{source.host}:{source.port}",
                    user_agent=str(user_agent) if user_agent is not None else None,
                )
            )
        bindings = self.location.bindings(decision.aor, now=now)
        self.respond(ctx, ok_response(request, bindings, now=now, tag=self.ids.tag()))

    # -- stateless forwarding --------------------------------------------------------

    async def _forward_stateless(self, event: ForwardNeeded) -> None:
        peers = await self.resolve(event.next_hop)
        if peers:
            self.core.send_stateless(event.message, peers[0])
            self.driver.after_input()

    def _log_outcome(self, request: Request, status: int) -> None:
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        method = request.method
        self.metrics.inc(
            "callscript_sip_responses_total", method=method, **{"class": status_class(status)}
        )
        if method == "INVITE":
            self.metrics.inc("callscript_calls_total", outcome=outcome_of(status))
        log.info(
            "%s %s from %s call-id %s -> %d",
            request.method,
            request.uri,
            request.from_addr.uri,
            request.call_id,
            status,
            extra={"call_id": request.call_id},
        )
