"""A user's script: read it, upload a new version, list versions, roll back, delete.

``{user}`` in a path is the account, ``alice@example.com``. A subscriber may
name only themselves; anyone else gets 403, audited. An admin may name any
account (404 when there is none).

An upload is checked (syntax, policy, API use) before anything changes: a
refused one answers 422 with every problem as ``line:col: message`` and the live
version stays. An accepted one becomes a new immutable version, is written to
the scripts directory atomically and made live in the running server at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from callscript.engine.scripts import ScriptVersion
from callscript.sandbox.compiler import source_digest
from callscript.store.versions import Version, VersionNotFound
from callscript.web.auth import Principal, authenticator, services_of
from callscript.web.errors import ApiError, json_response
from callscript.web.openapi import RouteSpec
from callscript.web.services import WebServices
from callscript.web.uploads import (
    ScriptRef,
    errors,
    problem_dict,
    problem_text,
    problems_of,
    reload_now,
    remove_live,
    script_ref,
    write_live,
)


def target(request: web.Request) -> tuple[Principal, ScriptRef]:
    """The caller and the script the ``{user}`` of the path names, access checked."""
    auth = authenticator(request)
    who = auth.principal(request)
    user = request.match_info["user"]
    if user != who.name and not who.is_admin:
        raise auth.denied(request, who, "not your script", owner=f"sip:{user[:200]}")
    account = auth.account_of(user)
    ref = None if account is None else script_ref(account.username, account.domain)
    if ref is None:
        raise ApiError(404, "not_found", f"no user {user!r}")
    return who, ref


def version_dict(version: Version, *, live: Version | None, source: bool = False) -> dict[str, Any]:
    """A version as JSON-able values."""
    out: dict[str, Any] = {
        "id": version.id,
        "script": version.name,
        "author": version.author,
        "created_at": version.created_at,
        "digest": version.digest,
        "short": version.short,
        "live": live is not None and live.id == version.id,
    }
    if source:
        out["source"] = version.source
    return out


def quarantined(services: WebServices, name: str, source: str) -> bool:
    """Whether the running version of ``name`` with ``source`` is in quarantine."""
    pool = services.pool
    if pool is None:
        return False
    return pool.quarantine.active((name, source_digest(source)), now=services.monotonic())


def script_status(services: WebServices, ref: ScriptRef) -> dict[str, Any]:
    """What the store and the running server say about a script."""
    live = services.versions.live(ref.name)
    running: ScriptVersion | None = None
    rejected = None
    if services.host is not None:
        running = services.host.registry.get(ref.name)
        rejected = services.host.registry.rejected.get(ref.name)
    source = live.source if live is not None else running.source if running is not None else None
    return {
        "user": ref.user,
        "owner": ref.aor,
        "script": ref.name,
        "live": None if live is None else version_dict(live, live=live),
        "running": None
        if running is None
        else {"digest": running.digest, "short": running.version},
        "rejected": rejected,
        "quarantined": running is not None and quarantined(services, ref.name, running.source),
        "source": source,
    }


async def get_script(request: web.Request) -> web.Response:
    """The live script (source, version) and what the running server runs."""
    _, ref = target(request)
    status = script_status(services_of(request), ref)
    if status["source"] is None:
        raise ApiError(404, "no_script", f"{ref.user} has no script")
    return json_response(status)


async def put_script(request: web.Request) -> web.Response:
    """Upload a new version: checked, stored, written and made live; 422 with problems if refused."""
    who, ref = target(request)
    services = services_of(request)
    rate_limit(services, "upload", who, services.config.uploads_per_minute)
    source = await _source_of(request)
    # Compiled in a thread: a large script must not hold up the SIP proxy on this loop.
    problems = await asyncio.to_thread(problems_of, source, ref, services.effective_policy())
    refused = errors(problems)
    if refused:
        services.metrics.inc("callscript_script_uploads_total", result="rejected")
        first = refused[0]
        services.record(
            "reject:upload",
            f"upload by {who.name} refused: {problem_text(first)}",
            owner=ref.aor,
            script=ref.name,
            version=source_digest(source)[:12],
            line=first.line,
        )
        raise ApiError(
            422,
            "invalid_script",
            f"the script has {len(refused)} problem(s); the live version is unchanged",
            extra={
                "problems": [problem_text(p) for p in refused],
                "details": [problem_dict(p) for p in problems],
            },
        )
    live = services.versions.live(ref.name)
    if live is not None and live.source == source:
        version, status = live, 200
    else:
        write_live(services.scripts_dir, ref.name, source)
        version = services.versions.add(ref.name, ref.aor, who.name, source, now=services.now())
        status = 201
        services.record(
            "upload",
            f"version {version.id} uploaded by {who.name}",
            owner=ref.aor,
            script=ref.name,
            version=version.short,
        )
    reload_now(services.host, ref.name)
    services.metrics.inc("callscript_script_uploads_total", result="accepted")
    body = version_dict(version, live=version)
    body["warnings"] = [problem_text(p) for p in problems if p.severity != "error"]
    return json_response(body, status=status)


async def delete_script(request: web.Request) -> web.Response:
    """Delete the live script (its owner gets default routing); versions stay listable."""
    who, ref = target(request)
    services = services_of(request)
    cleared = services.versions.clear_live(ref.name, now=services.now())
    removed = remove_live(services.scripts_dir, ref.name)
    if not (cleared or removed):
        raise ApiError(404, "no_script", f"{ref.user} has no script")
    reload_now(services.host, ref.name)
    services.record("delete:api", f"deleted by {who.name}", owner=ref.aor, script=ref.name)
    return json_response({"deleted": ref.name})


async def list_versions(request: web.Request) -> web.Response:
    """Every version of the script, newest first."""
    _, ref = target(request)
    services = services_of(request)
    live = services.versions.live(ref.name)
    limit = int_query(request, "limit", 100)
    history = services.versions.history(ref.name, limit=limit)
    return json_response([version_dict(v, live=live) for v in history])


async def get_version(request: web.Request) -> web.Response:
    """One version, with its source."""
    _, ref = target(request)
    services = services_of(request)
    version = _version(services, ref, request.match_info["version"])
    return json_response(version_dict(version, live=services.versions.live(ref.name), source=True))


async def rollback(request: web.Request) -> web.Response:
    """Make an earlier version live again (checked again under today's policy)."""
    who, ref = target(request)
    services = services_of(request)
    rate_limit(services, "upload", who, services.config.uploads_per_minute)
    version = _version(services, ref, request.match_info["version"])
    problems = await asyncio.to_thread(
        problems_of, version.source, ref, services.effective_policy()
    )
    refused = errors(problems)
    if refused:
        raise ApiError(
            422,
            "invalid_script",
            f"version {version.id} breaks today's policy; the live version is unchanged",
            extra={"problems": [problem_text(p) for p in refused]},
        )
    write_live(services.scripts_dir, ref.name, version.source)
    services.versions.set_live(ref.name, version.id, now=services.now())
    reload_now(services.host, ref.name)
    services.record(
        "rollback",
        f"version {version.id} made live again by {who.name}",
        owner=ref.aor,
        script=ref.name,
        version=version.short,
    )
    return json_response(version_dict(version, live=version))


def _version(services: WebServices, ref: ScriptRef, text: str) -> Version:
    if not text.isdigit() or len(text) > 18:
        raise ApiError(404, "not_found", f"no version {text[:20]!r}")
    try:
        return services.versions.get(ref.name, int(text))
    except VersionNotFound:
        raise ApiError(404, "not_found", f"{ref.user}'s script has no version {text}") from None


async def _source_of(request: web.Request) -> str:
    data = await request.read()
    if request.content_type == "application/json":
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "bad_json", "the body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("source"), str):
            raise ApiError(400, "bad_json", 'expected {"source": "..."}')
        return str(body["source"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            422,
            "invalid_script",
            "the script is not UTF-8 text",
            extra={"problems": [f"1:{exc.start + 1}: not UTF-8"]},
        ) from None


def rate_limit(services: WebServices, kind: str, who: Principal, per_minute: int) -> None:
    wait = services.limiter.take(kind, who.name, per_minute, now=services.monotonic())
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            f"too many {kind}s: {per_minute} a minute",
            headers={"Retry-After": str(int(wait))},
        )


def int_query(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or len(text) > 6:
        raise ApiError(400, "bad_query", f"{name} must be a number")
    return int(text)


USER = "/api/users/{user}"
ROUTES = (
    RouteSpec(
        "GET", f"{USER}/script", get_script, "The live script", returns="Script", errors=(404,)
    ),
    RouteSpec(
        "PUT",
        f"{USER}/script",
        put_script,
        "Upload a new version (checked first)",
        body="text",
        returns="Version",
        status=201,
        errors=(413, 422, 429),
    ),
    RouteSpec("DELETE", f"{USER}/script", delete_script, "Delete the live script", errors=(404,)),
    RouteSpec(
        "GET",
        f"{USER}/script/versions",
        list_versions,
        "Every version, newest first",
        returns="Versions",
        query={"limit": "how many (default 100)"},
    ),
    RouteSpec(
        "GET",
        f"{USER}/script/versions/{{version}}",
        get_version,
        "One version with its source",
        returns="Version",
        errors=(404,),
    ),
    RouteSpec(
        "POST",
        f"{USER}/script/versions/{{version}}/rollback",
        rollback,
        "Make this version live again",
        returns="Version",
        errors=(404, 422, 429),
    ),
)
