"""The route table every API module declares, and the OpenAPI 3.1 document built from it.

Each route is a :class:`RouteSpec`; the application registers exactly these, so
``/openapi.json`` lists every route there is, with who may call it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aiohttp import web

import callscript

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PARAM_RE = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route: what it does, who may call it, what it takes and answers.

    ``access`` is ``public``, ``user`` (any signed-in user; a ``{user}`` path names
    themselves unless they are an admin) or ``admin``. ``body`` names a schema in
    :data:`SCHEMAS` (or ``text`` for a script's source), ``returns`` the success schema.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    access: str = "user"
    body: str | None = None
    returns: str | None = None
    status: int = 200
    query: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[int, ...] = ()


_ERROR: Mapping[str, Any] = MappingProxyType({"$ref": "#/components/schemas/Error"})

SCHEMAS: Mapping[str, Any] = MappingProxyType(
    {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "a stable code (not_found, invalid...)"},
                "message": {"type": "string"},
                "problems": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "line:col: message, for a rejected script",
                },
            },
        },
        "Me": {"type": "object"},
        "Session": {
            "type": "object",
            "required": ["user", "password"],
            "properties": {"user": {"type": "string"}, "password": {"type": "string"}},
        },
        "SessionToken": {"type": "object"},
        "Script": {"type": "object"},
        "Version": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "author": {"type": "string"},
                "created_at": {"type": "number"},
                "digest": {"type": "string"},
                "live": {"type": "boolean"},
                "source": {"type": "string"},
            },
        },
        "Versions": {"type": "array", "items": {"$ref": "#/components/schemas/Version"}},
        "Simulation": {
            "type": "object",
            "properties": {
                "version": {"description": "a version id, 'live' (default) or 'draft' with source"},
                "source": {"type": "string"},
                "from": {"type": "string"},
                "to": {"type": "string"},
                "direction": {"enum": ["incoming", "outgoing"]},
                "method": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                "outcomes": {"type": "array", "items": {"type": "string"}},
                "default_outcome": {"type": "string"},
                "contacts": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Trace": {"type": "object"},
        "Calls": {"type": "array", "items": {"type": "object"}},
        "Policy": {"type": "object"},
        "PolicyOverride": {"type": "object"},
        "Scripts": {"type": "array", "items": {"type": "object"}},
        "Users": {"type": "array", "items": {"type": "object"}},
        "Audit": {"type": "array", "items": {"type": "object"}},
        "Quarantine": {"type": "object", "properties": {"duration": {"type": "number"}}},
        "TokenRequest": {
            "type": "object",
            "required": ["user"],
            "properties": {
                "user": {"type": "string"},
                "label": {"type": "string"},
                "expires_in": {"type": "number"},
            },
        },
        "Token": {"type": "object"},
        "Tokens": {"type": "array", "items": {"type": "object"}},
    }
)


def openapi_document(
    routes: Sequence[RouteSpec], *, server_url: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "callscript management API",
            "version": callscript.__version__,
            "description": (
                "Upload, test and watch per-user call scripts. Sign in with your SIP "
                "credentials (HTTP Digest; Basic over TLS) or a bearer token."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(dict(SCHEMAS)),
            "securitySchemes": {
                "digest": {"type": "http", "scheme": "digest"},
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _operation(route: RouteSpec) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__.strip("_"),
        "x-access": route.access,
        "responses": {str(route.status): _success(route)},
    }
    if route.access != "public":
        operation["security"] = [{"digest": []}, {"basic": []}, {"bearer": []}]
        operation["responses"]["401"] = {
            "description": "no valid credentials",
            "content": _json(_ERROR),
        }
        operation["responses"]["403"] = {
            "description": "not yours (audited)",
            "content": _json(_ERROR),
        }
    for status in route.errors:
        operation["responses"][str(status)] = {
            "description": _REASONS.get(status, "error"),
            "content": _json(_ERROR),
        }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM_RE.findall(route.path)
    ]
    parameters += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": text,
        }
        for name, text in route.query.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body == "text":
        operation["requestBody"] = {
            "required": True,
            "content": {
                "text/x-python": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {"type": "object", "properties": {"source": {"type": "string"}}}
                },
            },
        }
    elif route.body is not None:
        operation["requestBody"] = {"required": True, "content": _json(_ref(route.body))}
    return operation


def _success(route: RouteSpec) -> dict[str, Any]:
    if route.returns is None:
        return {"description": "done"}
    if route.returns == "text":
        return {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"description": "success", "content": _json(_ref(route.returns))}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


_REASONS = MappingProxyType(
    {
        400: "bad request",
        404: "no such user, script or version",
        409: "conflict",
        413: "body too large",
        422: "the script (or value) was refused; problems as line:col: message",
        429: "rate limited (Retry-After says when to try again)",
        503: "unavailable on this server (scripts disabled)",
    }
)
