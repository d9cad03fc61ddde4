"""Admin endpoints: users, the effective policy and per-domain overrides, every script
with its status, quarantine and release, the audit log, API tokens.

Every route here needs the admin role; anyone else gets 403 and an audit entry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from callscript.errors import ConfigError
from callscript.sandbox.compiler import source_digest
from callscript.sandbox.policy import QuarantineRules
from callscript.web.auth import authenticator, services_of
from callscript.web.errors import ApiError, json_response, read_json
from callscript.web.openapi import RouteSpec
from callscript.web.overrides import apply_overrides, normalise_domain
from callscript.web.scripts_api import int_query, script_status, target
from callscript.web.services import WebServices
from callscript.web.uploads import script_ref

ADMIN = "/api/admin"
# An admin's quarantine lasts until released unless a duration is given (a week at most).
_MAX_QUARANTINE = 7 * 86400.0


async def get_users(request: web.Request) -> web.Response:
    """Every account, its role and its script's status."""
    authenticator(request).admin(request)
    services = services_of(request)
    out = []
    for account in services.accounts.list():
        ref = script_ref(account.username, account.domain)
        status = None if ref is None else script_status(services, ref)
        if status is not None:
            status.pop("source")
        out.append(
            {"user": f"{account.username}@{account.domain}", "role": account.role, "script": status}
        )
    return json_response(out)


async def get_policy(request: web.Request) -> web.Response:
    """The effective sandbox policy and the overrides set through the API."""
    authenticator(request).admin(request)
    services = services_of(request)
    return json_response(
        {"effective": services.effective_policy().to_dict(), "overrides": services.overrides.all()}
    )


async def get_domain_policy(request: web.Request) -> web.Response:
    """The rules a domain's scripts run under, and its override."""
    authenticator(request).admin(request)
    services = services_of(request)
    domain = normalise_domain(request.match_info["domain"])
    return json_response(
        {
            "domain": domain,
            "effective": services.effective_policy().for_domain(domain).to_dict(),
            "override": services.overrides.all().get(domain),
        }
    )


async def put_domain_policy(request: web.Request) -> web.Response:
    """Set a domain's override (sections of keys to change); checked like the policy file."""
    who = authenticator(request).admin(request)
    services = services_of(request)
    domain = normalise_domain(request.match_info["domain"])
    override = await read_json(request)
    overrides = services.overrides.all()
    overrides[domain] = override
    _install(services, overrides)
    services.overrides.put(domain, override, author=who.name, now=services.now())
    services.record("policy:override", f"override for {domain} set by {who.name}: {override}")
    return await get_domain_policy(request)


async def delete_domain_policy(request: web.Request) -> web.Response:
    """Remove a domain's override: the file's rules apply again."""
    who = authenticator(request).admin(request)
    services = services_of(request)
    domain = normalise_domain(request.match_info["domain"])
    overrides = services.overrides.all()
    if overrides.pop(domain, None) is None:
        raise ApiError(404, "not_found", f"no override for {domain}")
    _install(services, overrides)
    services.overrides.remove(domain)
    services.record("policy:override", f"override for {domain} removed by {who.name}")
    return json_response({"removed": domain})


def _install(services: WebServices, overrides: dict[str, Any]) -> None:
    try:
        policy = apply_overrides(services.policy, overrides)
    except ConfigError as exc:
        raise ApiError(422, "invalid_policy", str(exc)) from None
    services.install_policy(policy)


async def get_scripts(request: web.Request) -> web.Response:
    """Every script the store or the running server knows, with its status."""
    authenticator(request).admin(request)
    services = services_of(request)
    names = set(services.versions.names())
    if services.host is not None:
        names.update(services.host.registry.scripts)
        names.update(services.host.registry.rejected)
    out = []
    for name in sorted(names):
        live = services.versions.live(name)
        running = services.host.registry.get(name) if services.host is not None else None
        rejected = services.host.registry.rejected.get(name) if services.host is not None else None
        out.append(
            {
                "script": name,
                "live": None
                if live is None
                else {"id": live.id, "short": live.short, "author": live.author},
                "running": None if running is None else running.version,
                "rejected": None if rejected is None else rejected[:12],
                "quarantined": running is not None and _active(services, name, running.source),
            }
        )
    return json_response(out)


def _active(services: WebServices, name: str, source: str) -> bool:
    pool = services.pool
    key = (name, source_digest(source))
    return pool is not None and pool.quarantine.active(key, now=services.monotonic())


async def post_quarantine(request: web.Request) -> web.Response:
    """Quarantine the running version of a user's script: its calls get the fallback."""
    who, ref = target(request)
    services = services_of(request)
    if not who.is_admin:
        raise authenticator(request).denied(request, who, "admin role required")
    body = await read_json(request)
    duration = body.get("duration", _MAX_QUARANTINE)
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 < duration <= _MAX_QUARANTINE
    ):
        raise ApiError(422, "invalid", f"duration must be 0 < seconds <= {_MAX_QUARANTINE:g}")
    running = services.host.registry.get(ref.name) if services.host is not None else None
    if running is None or services.pool is None:
        raise ApiError(404, "no_script", f"{ref.user} has no running script")
    pool = services.pool
    rules = pool.policy.for_domain(ref.domain)
    # One violation under rules that quarantine at the first one: the pool's own bookkeeping.
    forced = dataclasses.replace(
        rules, quarantine=QuarantineRules(violations=1, window=1.0, duration=float(duration))
    )
    pool.quarantine.record(
        (ref.name, source_digest(running.source)), forced, now=services.monotonic()
    )
    pool.stats.quarantined += 1
    services.record(
        "quarantine:admin",
        f"quarantined by {who.name} for {float(duration):g} s",
        owner=ref.aor,
        script=ref.name,
        version=running.version,
    )
    return json_response({"script": ref.name, "quarantined": True, "duration": duration})


async def delete_quarantine(request: web.Request) -> web.Response:
    """Release a user's script from quarantine (every version)."""
    who, ref = target(request)
    services = services_of(request)
    if not who.is_admin:
        raise authenticator(request).denied(request, who, "admin role required")
    if services.pool is None:
        raise ApiError(503, "scripts_disabled", "scripts are disabled on this server")
    services.pool.quarantine.release(ref.name)
    services.record("release", f"released by {who.name}", owner=ref.aor, script=ref.name)
    return json_response({"script": ref.name, "quarantined": False})


async def get_audit(request: web.Request) -> web.Response:
    """The audit log, newest first; filters: owner (an AOR), kind (prefix before ':'), limit."""
    authenticator(request).admin(request)
    services = services_of(request)
    entries = services.audit.entries(
        owner=request.query.get("owner") or None,
        kind=request.query.get("kind") or None,
        limit=min(int_query(request, "limit", 100), 1000),
    )
    return json_response([dataclasses.asdict(e) for e in entries])


async def get_tokens(request: web.Request) -> web.Response:
    """The API tokens issued (never their secrets)."""
    authenticator(request).admin(request)
    return json_response([t.to_dict() for t in services_of(request).tokens.list()])


async def post_token(request: web.Request) -> web.Response:
    """Issue a bearer token for a user; the token is shown once."""
    auth = authenticator(request)
    who = auth.admin(request)
    services = services_of(request)
    body = await read_json(request)
    user = body.get("user")
    account = auth.account_of(user) if isinstance(user, str) else None
    if account is None:
        raise ApiError(404, "not_found", f"no user {user!r}")
    label = body.get("label", "")
    expires_in = body.get("expires_in")
    if not isinstance(label, str) or len(label) > 200:
        raise ApiError(422, "invalid", "label must be text")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0
    ):
        raise ApiError(422, "invalid", "expires_in must be a positive number of seconds")
    token, info = services.tokens.issue(
        account.username,
        account.domain,
        kind="token",
        label=label,
        created_by=who.name,
        now=services.now(),
        ttl=None if expires_in is None else float(expires_in),
    )
    services.record(
        "token:issued", f"token {info.id} for {info.username}@{info.domain} issued by {who.name}"
    )
    return json_response({**info.to_dict(), "token": token}, status=201)


async def delete_token(request: web.Request) -> web.Response:
    """Revoke a token."""
    who = authenticator(request).admin(request)
    services = services_of(request)
    text = request.match_info["token"]
    if not text.isdigit() or len(text) > 18 or not services.tokens.revoke(int(text)):
        raise ApiError(404, "not_found", f"no token {text[:20]!r}")
    services.record("token:revoked", f"token {text} revoked by {who.name}")
    return json_response({"revoked": int(text)})


ROUTES = (
    RouteSpec(
        "GET",
        f"{ADMIN}/users",
        get_users,
        "Every account with its script status",
        access="admin",
        returns="Users",
    ),
    RouteSpec(
        "GET",
        f"{ADMIN}/policy",
        get_policy,
        "The effective policy and overrides",
        access="admin",
        returns="Policy",
    ),
    RouteSpec(
        "GET",
        f"{ADMIN}/policy/domains/{{domain}}",
        get_domain_policy,
        "A domain's rules and override",
        access="admin",
        returns="Policy",
    ),
    RouteSpec(
        "PUT",
        f"{ADMIN}/policy/domains/{{domain}}",
        put_domain_policy,
        "Set a domain's override",
        access="admin",
        body="PolicyOverride",
        returns="Policy",
        errors=(422,),
    ),
    RouteSpec(
        "DELETE",
        f"{ADMIN}/policy/domains/{{domain}}",
        delete_domain_policy,
        "Remove a domain's override",
        access="admin",
        errors=(404,),
    ),
    RouteSpec(
        "GET",
        f"{ADMIN}/scripts",
        get_scripts,
        "Every script with its status",
        access="admin",
        returns="Scripts",
    ),
    RouteSpec(
        "POST",
        f"{ADMIN}/scripts/{{user}}/quarantine",
        post_quarantine,
        "Quarantine a user's running script",
        access="admin",
        body="Quarantine",
        errors=(404, 422),
    ),
    RouteSpec(
        "DELETE",
        f"{ADMIN}/scripts/{{user}}/quarantine",
        delete_quarantine,
        "Release a user's script",
        access="admin",
        errors=(404, 503),
    ),
    RouteSpec(
        "GET",
        f"{ADMIN}/audit",
        get_audit,
        "The audit log, newest first",
        access="admin",
        returns="Audit",
        query={
            "owner": "an owner's AOR (sip:alice@example.com)",
            "kind": "a kind (prefix before ':')",
            "limit": "how many (default 100)",
        },
    ),
    RouteSpec(
        "GET", f"{ADMIN}/tokens", get_tokens, "API tokens issued", access="admin", returns="Tokens"
    ),
    RouteSpec(
        "POST",
        f"{ADMIN}/tokens",
        post_token,
        "Issue a token (shown once)",
        access="admin",
        body="TokenRequest",
        returns="Token",
        status=201,
        errors=(404, 422),
    ),
    RouteSpec(
        "DELETE",
        f"{ADMIN}/tokens/{{token}}",
        delete_token,
        "Revoke a token",
        access="admin",
        errors=(404,),
    ),
)
