"""JSON errors: every failure of the API answers ``{"error": CODE, "message": TEXT, ...}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from callscript.store.base import StoreError
from callscript.web.services import SERVICES

log = logging.getLogger("callscript.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own refusals (no route, wrong method, body too large) get these codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


class ApiError(Exception):
    """A refusal the client should read: HTTP ``status``, a stable ``code``, a ``message``.

    ``extra`` adds fields to the JSON body (``problems`` of a rejected script);
    ``headers`` adds response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})
        self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)

    def response(self) -> web.Response:
        """The JSON response."""
        body = {"error": self.code, "message": self.message, **self.extra}
        return json_response(body, status=self.status, headers=self.headers)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()
) -> web.Response:
    """``data`` as a JSON response (UTF-8, non-ASCII kept); ``headers`` may repeat names."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return web.Response(
        text=json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=CIMultiDict(pairs),
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ApiError: 400 when the body is not a JSON object.
    """
    try:
        data = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ApiError, aiohttp's HTTP errors and unexpected failures into JSON bodies."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        message = exc.reason
        if exc.status == 413:
            limit = request.app[SERVICES].config.max_upload
            message = f"the request body is larger than {limit} bytes"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_response(
            {"error": code, "message": message}, status=exc.status, headers=headers
        )
    except StoreError as exc:
        log.error("store failure on %s %s: %s", request.method, request.path, exc)
        return json_response(
            {"error": "store_error", "message": "the database could not serve this request"},
            status=503,
        )
    except Exception:
        log.exception("API failure on %s %s", request.method, request.path)
        return json_response(
            {"error": "internal", "message": "internal error (see the server log)"}, status=500
        )
