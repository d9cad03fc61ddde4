"""``event.action`` of a server script: what the admin's handler can do with a request.

In an ``async def`` handler every action is a coroutine (``await
event.action.forward()``); a plain ``def`` handler gets the same actions as
blocking calls (bridge.py). Everything runs on the server's event loop.

Per-user actions (the same names and outcomes as user scripts):
    proxy() -> 'success' | 'busy' | 'noanswer' | 'redirection' | 'failure',
    redirect(), reject(), accept().
Server actions:
    forward() (stateful, or stateless=True), record_route(), loose_route(),
    reply(), save(), lookup(), verify(), challenge(), user_script(), default().
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, cast

from callscript.engine.scripted import outcome_of
from callscript.sandbox.actions import Redirect
from callscript.serverscript import forwarding, registrar
from callscript.serverscript.call import Authentication, RoutedRequest
from callscript.serverscript.forwarding import Targets, to_uri, to_uris
from callscript.serverscript.usercall import USER_ACTIONS, run_user_script
from callscript.sip.address import Address
from callscript.sip.proxy.route import next_hop
from callscript.sip.uri import URI

if TYPE_CHECKING:
    from callscript.serverscript.router import ScriptRouter

log = logging.getLogger("callscript.serverscript")

Headers = Mapping[str, object] | Iterable[tuple[str, object]]


class Actions:
    """``event.action`` in an ``async def`` handler (each method is a coroutine)."""

    __slots__ = ("_call", "_router")

    def __init__(self, router: ScriptRouter, call: RoutedRequest) -> None:
        self._router = router
        self._call = call

    # -- answering ----------------------------------------------------------------

    async def reply(
        self,
        code: int,
        reason: str | None = None,
        *,
        headers: Headers = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        """Answer with any response, 100-699 (a provisional one lets the handler go on)."""
        if type(code) is not int or not 100 <= code <= 699:
            raise ValueError(f"reply() code must be an integer 100-699, not {code!r}")
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        self._router.reply(
            self._call.ctx, code, reason, headers=pairs, body=body, content_type=content_type
        )

    async def reject(self, code: int = 603, reason: str | None = None) -> None:
        """Answer with a final error response, ``code`` 400-699."""
        if type(code) is not int or not 400 <= code <= 699:
            raise ValueError(f"reject() code must be an integer 400-699, not {code!r}")
        await self.reply(code, reason)

    async def accept(self) -> None:
        """Answer 200 OK to a request other than INVITE (OPTIONS, MESSAGE...)."""
        if self._call.request.method == "INVITE":
            raise ValueError("accept() answers requests other than INVITE; use forward()/proxy()")
        await self.reply(200)

    async def redirect(self, location: Targets | None = None, permanent: bool = False) -> None:
        """Answer 302 (301 when ``permanent``) with ``location`` (or event.location) as Contact."""
        targets = to_uris(location) or list(self._call.location)
        if not targets:
            raise ValueError("redirect() needs a location")
        status = Redirect(tuple(str(t) for t in targets), permanent).status
        contacts = [Address(uri) for uri in targets]
        self._router.reply(self._call.ctx, status, headers=[("Contact", contacts)])

    # -- routing --------------------------------------------------------------------

    async def record_route(self) -> None:
        """Stay on the path of the dialog this request creates: our Record-Route goes on
        what ``forward()``/``proxy()`` send (off unless asked for)."""
        self._call.record_route = True

    async def loose_route(self) -> bool:
        """Whether the request follows a route set: True when a Route value is left (the
        core already removed ours, RFC 3261 §16.4) or, within a dialog, when the
        Request-URI names someone else. ``forward()`` then sends it on its way."""
        call = self._call
        if "Route" in call.request:
            return True
        return call.in_dialog and not self._router.config.is_local(next_hop(call.request))

    async def forward(
        self,
        uri: Targets | None = None,
        *,
        next_hop: Targets | None = None,
        stateless: bool = False,
        timeout: float | None = None,
    ) -> bool:
        """Send the request on; the callee's answer goes back to the caller as it comes.

        Args:
            uri: new Request-URI(s), forked in parallel; default: event.location
                (``lookup()`` or assigned), else the Request-URI as it is.
            next_hop: where to send the request instead of resolving its target: one
                URI, or several tried in order when one fails (503, timeout, transport).
            stateless: forward without keeping state (RFC 3261 §16.11); retransmissions
                run the handler again and must be routed the same way.
            timeout: ring timeout of an INVITE (default: the server's ring_timeout).

        Returns:
            False when no target resolved; the request was then answered (404/480).
        """
        router, call = self._router, self._call
        uris, hops = to_uris(uri), to_uris(next_hop)
        if stateless:
            return await self._forward_stateless(uris, hops)
        groups = await forwarding.target_groups(router, call, uris, hops)
        if not groups:
            router.reply(call.ctx, 480 if call.location else 404, "No reachable target")
            return False
        forwarding.apply_record_route(router, call, groups[0][0].peers[0].transport)
        ring = None if call.in_dialog else (timeout or router.policy.ring_timeout)
        router.proxy(call.ctx, groups, ring_timeout=ring)
        return True

    async def _forward_stateless(self, uris: list[URI], hops: list[URI]) -> bool:
        router, call = self._router, self._call
        target = uris[0] if uris else (call.location[0] if call.location else None)
        hop = target if target is not None else next_hop(call.request)
        peers = await forwarding.peers_of(router, hops or [hop])
        if not peers:
            router.reply(call.ctx, 404, "No reachable target")
            return False
        copy = forwarding.stateless_copy(router, call, target, peers[0])
        router.forward_stateless(call, copy, peers[0])
        return True

    async def proxy(
        self,
        timeout: float | None = None,
        location: Targets | None = None,
        sequential: bool = False,
    ) -> str:
        """Ring ``location`` (or event.location, or the registered contacts) and wait.

        Returns 'success' (answered; the 2xx went to the caller), 'busy', 'noanswer',
        'redirection' or 'failure'. After a failure the handler decides what follows;
        if it decides nothing, the caller gets the response the attempt ended with.
        """
        router, call = self._router, self._call
        uris = to_uris(location)
        if not uris and not call.location and call.bindings is None:
            registrar.lookup(router, call, None)
        if not uris and not call.location:
            return "failure"
        groups = await forwarding.target_groups(router, call, uris, [], sequential=sequential)
        if not groups:
            return "failure"
        forwarding.apply_record_route(router, call, groups[0][0].peers[0].transport)
        completed = await router.proxy_and_wait(
            call.ctx, groups, ring_timeout=timeout or router.policy.ring_timeout, final=False
        )
        if completed is None:
            return "failure"
        call.last = None if completed.forwarded else completed.response
        outcome = outcome_of(completed.status)
        if outcome == "redirection":
            contacts = cast(list[Address], completed.response.get_all("Contact"))
            call.redirect_targets = [contact.uri for contact in contacts]
        return outcome

    async def default(self) -> None:
        """Route the request the way ``callscript serve`` does (registrar, auth, user scripts)."""
        await self._router.default_route(self._call)

    async def user_script(
        self, direction: str = "incoming", allow: Iterable[str] | None = None
    ) -> str:
        """Run the callee's (``incoming``) or caller's (``outgoing``) per-user script.

        Returns 'done' when the script answered or proxied the request, 'default'
        when it left the request to the handler (it asked for default routing, failed
        with that fallback, or did what ``allow`` does not list), 'none' when the
        user has no script. ``allow`` narrows the script to some of: 'proxy',
        'redirect', 'reject', 'accept', 'voicemail'.
        """
        if direction not in ("incoming", "outgoing"):
            raise ValueError("user_script() direction is 'incoming' or 'outgoing'")
        allowed = USER_ACTIONS if allow is None else frozenset(allow)
        if not allowed <= USER_ACTIONS:
            raise ValueError(f"user_script() allow: unknown {sorted(allowed - USER_ACTIONS)}")
        result = await run_user_script(self._router, self._call, direction, allowed)
        return result.value

    # -- registrar, location, digest --------------------------------------------------

    async def save(self) -> bool:
        """Store a REGISTER's bindings and answer it (RFC 3261 §10.3); False when refused."""
        return registrar.save(self._router, self._call)

    async def lookup(self, aor: str | URI | None = None) -> list[URI]:
        """The registered contacts of ``aor`` (default: the Request-URI's); they become
        event.location, which forward() and proxy() use. Empty when none."""
        return registrar.lookup(self._router, self._call, to_uri(aor) if aor else None)

    async def verify(self, proxy: bool | None = None) -> Authentication:
        """Check the digest credentials: Authorization for a REGISTER, else
        Proxy-Authorization (``proxy`` chooses). True when they prove the user the
        request claims (To of a REGISTER, From otherwise)."""
        as_proxy = self._call.request.method != "REGISTER" if proxy is None else proxy
        return registrar.verify(self._router, self._call, as_proxy)

    async def challenge(self, proxy: bool | None = None, stale: bool | None = None) -> None:
        """Answer with a digest challenge: 401 for a REGISTER, else 407 (``proxy`` chooses);
        ``stale`` defaults to what the last verify() found."""
        as_proxy = self._call.request.method != "REGISTER" if proxy is None else proxy
        registrar.challenge(self._router, self._call, as_proxy, stale)

    def __repr__(self) -> str:
        return f"<action {self._call.request.method} {self._call.request.uri}>"
