"""Registrar, location service and digest actions of server scripts.

RFC 3261 §10.3 (REGISTER processing: the handler does the authentication
steps itself with ``verify``/``challenge``; ``save`` does the rest), §22.2 and
§22.3 (401 and 407 challenges). The same stores and digest servers as
``callscript serve``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callscript.serverscript.call import Authentication, AuthOutcome, RoutedRequest
from callscript.sip.auth import DigestServer
from callscript.sip.registrar import decide_register, ok_response
from callscript.sip.uri import URI
from callscript.store.base import Binding

if TYPE_CHECKING:
    from callscript.serverscript.router import ScriptRouter


def realm_domain(call: RoutedRequest, proxy: bool) -> str:
    """The domain whose realm checks the request: the Request-URI's for a registrar
    challenge (401), the From domain for a proxy challenge (407)."""
    request = call.request
    return request.from_addr.uri.host if proxy else request.uri.host


def digest_for(router: ScriptRouter, call: RoutedRequest, proxy: bool) -> DigestServer:
    """The digest server of the realm that checks ``call``."""
    return router.auth_for(realm_domain(call, proxy))


def verify(router: ScriptRouter, call: RoutedRequest, proxy: bool) -> Authentication:
    """Check the request's (Proxy-)Authorization; good credentials must be the claimed user's.

    The claimed user is the To user of a REGISTER (RFC 3261 §10.3 step 4: only the
    owner changes its bindings) and the From user of anything else.
    """
    request = call.request
    server = digest_for(router, call, proxy)
    result = server.verify(
        request, now=router.wall_clock(), lookup_ha1=router.accounts.ha1, proxy=proxy
    )
    claimed = request.to_addr.uri if request.method == "REGISTER" else request.from_addr.uri
    call.auth = Authentication.of(result, claimed.user)
    return call.auth


def challenge(router: ScriptRouter, call: RoutedRequest, proxy: bool, stale: bool | None) -> None:
    """Answer with a 401 (or, ``proxy``, a 407) challenge for the request's realm."""
    if stale is None:
        stale = call.auth is not None and call.auth.status == AuthOutcome.STALE.value
    server = digest_for(router, call, proxy)
    response = server.challenge(call.request, now=router.wall_clock(), proxy=proxy, stale=stale)
    router.respond(call.ctx, response)


def lookup(router: ScriptRouter, call: RoutedRequest, aor: URI | None) -> list[URI]:
    """The registered contacts of ``aor`` (default: the Request-URI's); they become the location."""
    uri = aor if aor is not None else call.request.uri
    key = uri.aor if uri.is_sip else str(uri)
    bindings = router.location.bindings(key, now=router.wall_clock())
    call.bindings = bindings
    call.location = [URI.parse(binding.contact) for binding in bindings]
    return list(call.location)


def save(router: ScriptRouter, call: RoutedRequest) -> bool:
    """Apply a REGISTER to the location store and answer it (200 with the bindings, or the error).

    Returns True when the bindings were stored and 200 sent. Authentication is the
    handler's business (``verify``/``challenge``) and must come first.
    """
    request = call.request
    ctx = call.ctx
    if request.method != "REGISTER":
        raise ValueError(f"save() handles REGISTER, not {request.method}")
    if not router.config.serves(request.uri):
        router.reply(ctx, 403, "Not a domain served here")
        return False
    # RFC 3261 §10.3 step 2: extensions we do not support in Require get 420.
    required = [str(value) for value in request.get_all("Require")]
    if required:
        router.reply(ctx, 420, headers=[("Unsupported", required)])
        return False
    now = router.wall_clock()
    to_uri = request.to_addr.uri
    aor = to_uri.aor if to_uri.is_sip else str(to_uri)
    current = router.location.bindings(aor, now=now) if to_uri.is_sip else []
    decision = decide_register(request, current, router.policy.registrar, tag=router.ids.tag())
    if decision.error is not None:
        router.respond(ctx, decision.error)
        return False
    store = router.location
    if decision.remove_all:
        store.remove_all(decision.aor)
    for contact in decision.removes:
        store.remove(decision.aor, contact)
    user_agent = request.get("User-Agent")
    source = call.source
    for update in decision.saves:
        store.save(
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
    bindings = store.bindings(decision.aor, now=now)
    router.respond(ctx, ok_response(request, bindings, now=now, tag=router.ids.tag()))
    return True
