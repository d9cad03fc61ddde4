"""Trying and watching a script: simulations in the real sandbox, the user's call log,
and the signed-in user (``/api/me``, console sessions).

A simulation is the engine of ``callscript simulate``
(:func:`callscript.sandbox.simulate.simulate`) on the server's own sandbox pool:
the same compiler, worker processes, limits and replay as a real call.
"""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from callscript.sandbox.simulate import Outcome, Simulation, simulate
from callscript.sip.errors import ParseError
from callscript.sip.uri import parse_uri
from callscript.store.versions import VersionNotFound
from callscript.web.auth import authenticator, services_of
from callscript.web.errors import ApiError, json_response, read_json
from callscript.web.openapi import RouteSpec
from callscript.web.scripts_api import USER, int_query, rate_limit, script_status, target
from callscript.web.services import WebServices
from callscript.web.uploads import ScriptRef, problem_text, script_ref

_MAX_OUTCOMES = 20


async def post_simulation(request: web.Request) -> web.Response:
    """Run a made-up call through a version of the script; answer the action trace."""
    who, ref = target(request)
    services = services_of(request)
    pool = services.pool
    if pool is None:
        raise ApiError(503, "scripts_disabled", "scripts are disabled on this server")
    body = await read_json(request)
    source = _source(services, ref, body)
    direction = _choice(body, "direction", ("incoming", "outgoing"), "incoming")
    if direction == "incoming":
        caller = _text(body, "from", "")
        callee = _text(body, "to", ref.aor)
        if not caller:
            raise ApiError(422, "invalid", "'from' (the caller's URI) is required")
    else:
        caller = _text(body, "from", ref.aor)
        callee = _text(body, "to", "")
        if not callee:
            raise ApiError(422, "invalid", "'to' (the callee's URI) is required")
    owner = callee if direction == "incoming" else caller
    if _aor(owner) != ref.aor:
        side = "to" if direction == "incoming" else "from"
        raise ApiError(422, "invalid", f"'{side}' must be the script owner's address {ref.aor}")
    rate_limit(services, "simulation", who, services.config.simulations_per_minute)
    sim = Simulation(
        source=source,
        name=ref.name,
        caller=caller,
        callee=callee,
        method=_text(body, "method", "INVITE").upper(),
        direction=direction,
        time=_time(body.get("time")),
        outcomes=_outcomes(body.get("outcomes", [])),
        default_outcome=_text(body, "default_outcome", "success"),
        contacts=tuple(_strings(body, "contacts")),
    )
    if sim.default_outcome not in ("success", "busy", "noanswer", "failure", "redirection"):
        raise ApiError(422, "invalid", f"unknown default_outcome {sim.default_outcome!r}")
    trace = await simulate(pool, sim)
    return json_response(
        {
            "status": trace.status,
            "entries": list(trace.entries),
            "text": trace.text_lines(),
            "problems": [problem_text(p) for p in trace.problems],
        }
    )


async def get_calls(request: web.Request) -> web.Response:
    """The user's newest calls: script version, each action and outcome, violations."""
    _, ref = target(request)
    services = services_of(request)
    limit = min(int_query(request, "limit", 50), services.config.call_log_size)
    return json_response([r.to_dict() for r in services.calls.recent(ref.aor, limit=limit)])


async def get_me(request: web.Request) -> web.Response:
    """Who is signed in, their role and their script's status."""
    who = authenticator(request).principal(request)
    services = services_of(request)
    ref = script_ref(who.username, who.domain)
    return json_response(
        {
            "user": who.name,
            "role": who.role,
            "auth": who.method,
            "script": None if ref is None else script_status(services, ref),
        }
    )


async def post_session(request: web.Request) -> web.Response:
    """Console sign-in: user and password (TLS or loopback only) for a session token."""
    body = await read_json(request)
    user, password = _text(body, "user", ""), _text(body, "password", "")
    auth = authenticator(request)
    who = auth.password_login(request, user, password)
    services = services_of(request)
    token, info = services.tokens.issue(
        who.username,
        who.domain,
        kind="session",
        label="console",
        created_by=who.name,
        now=services.now(),
        ttl=services.config.session_ttl,
    )
    return json_response(
        {"token": token, "user": who.name, "role": who.role, "expires_at": info.expires_at},
        status=201,
    )


async def delete_session(request: web.Request) -> web.Response:
    """Sign out: the session token stops working."""
    authenticator(request).principal(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        services_of(request).tokens.revoke_token(token.strip())
    return json_response({"signed_out": True})


def _source(services: WebServices, ref: ScriptRef, body: dict[str, Any]) -> str:
    version = body.get("version", "live")
    # A draft: the editor's text, checked and run without being stored.
    if isinstance(body.get("source"), str) and (version == "draft" or "version" not in body):
        return str(body["source"])
    if version in ("live", None):
        status = script_status(services, ref)
        if status["source"] is None:
            raise ApiError(404, "no_script", f"{ref.user} has no live script; send 'source'")
        return str(status["source"])
    if isinstance(version, int) and not isinstance(version, bool):
        try:
            return str(services.versions.get(ref.name, version).source)
        except VersionNotFound:
            raise ApiError(404, "not_found", f"no version {version}") from None
    raise ApiError(422, "invalid", "'version' is a version id, 'live' or 'draft' (with 'source')")


def _text(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > 1024 or any(c in value for c in "\r\n\x00"):
        raise ApiError(422, "invalid", f"'{key}' must be one line of text")
    return value


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = _text(body, key, default)
    if value not in allowed:
        raise ApiError(422, "invalid", f"'{key}' must be one of {', '.join(allowed)}")
    return value


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or len(value) > _MAX_OUTCOMES:
        raise ApiError(422, "invalid", f"'{key}' must be a list of at most {_MAX_OUTCOMES}")
    return [_text({key: item}, key, "") for item in value]


def _outcomes(value: object) -> tuple[Outcome, ...]:
    if not isinstance(value, list) or len(value) > _MAX_OUTCOMES:
        raise ApiError(422, "invalid", f"'outcomes' must be a list of at most {_MAX_OUTCOMES}")
    out = []
    for item in value:
        try:
            if isinstance(item, str):
                out.append(Outcome.parse(item))
            elif isinstance(item, dict) and isinstance(item.get("result"), str):
                targets = item.get("targets", [])
                if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                    raise ValueError("targets must be a list of URIs")
                out.append(Outcome(item["result"], tuple(targets)))
            else:
                raise ValueError(f"bad outcome {item!r}")
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
    return tuple(out)


def _time(value: object) -> datetime.datetime:
    if value is None or value == "":
        return datetime.datetime.now(datetime.UTC)
    if not isinstance(value, str):
        raise ApiError(422, "invalid", "'time' must be an ISO 8601 time")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid", f"'time' is not ISO 8601: {value[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _aor(uri: str) -> str:
    try:
        return parse_uri(uri).aor
    except ParseError:
        raise ApiError(422, "invalid", f"not a SIP URI: {uri[:80]!r}") from None


ROUTES = (
    RouteSpec(
        "POST",
        f"{USER}/simulate",
        post_simulation,
        "Run a made-up call through a version; the action trace",
        body="Simulation",
        returns="Trace",
        errors=(404, 422, 429, 503),
    ),
    RouteSpec(
        "GET",
        f"{USER}/calls",
        get_calls,
        "The user's newest calls",
        returns="Calls",
        query={"limit": "how many (default 50)"},
    ),
    RouteSpec("GET", "/api/me", get_me, "Who is signed in", returns="Me"),
    RouteSpec(
        "POST",
        "/api/session",
        post_session,
        "Console sign-in (TLS or loopback): a session token",
        access="public",
        body="Session",
        returns="SessionToken",
        status=201,
        errors=(401, 403, 429),
    ),
    RouteSpec("DELETE", "/api/session", delete_session, "Sign out"),
)
