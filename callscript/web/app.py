"""The management HTTP API and web console, served by ``callscript serve`` (aiohttp).

    start_web(services) -> WebRunner     listen (TLS optional), serve, .stop()
    build_app(services) -> Application   the routes, for aiohttp's test client

Routes: the API modules' tables (:mod:`~callscript.web.scripts_api`,
:mod:`~callscript.web.calls_api`, :mod:`~callscript.web.admin_api`), plus
``/openapi.json`` (built from the same tables), ``/metrics`` (Prometheus text),
``/`` and ``/static/`` (the console: plain HTML, JS and CSS).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from callscript.engine.scripthost import ScriptHost
from callscript.errors import ConfigError
from callscript.metrics import EMPTY_LABELS, Metrics, Sample, status_class
from callscript.web import admin_api, calls_api, scripts_api
from callscript.web.auth import AUTH, Authenticator, authenticator
from callscript.web.errors import Handler, errors_middleware, json_response
from callscript.web.openapi import RouteSpec, openapi_document
from callscript.web.overrides import apply_overrides
from callscript.web.services import SERVICES, WebServices

log = logging.getLogger("callscript.web")

STATIC = Path(__file__).parent / "static"
API_ROUTES: tuple[RouteSpec, ...] = (*calls_api.ROUTES, *scripts_api.ROUTES, *admin_api.ROUTES)
# Strict enough for the console (own scripts and styles only), harmless for JSON.
_SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    return json_response(openapi_document(all_routes()))


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus metrics in the text exposition format."""
    services = request.app[SERVICES]
    if not services.config.metrics_public:
        authenticator(request).admin(request)
    return web.Response(
        body=services.metrics.render().encode(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def get_console(request: web.Request) -> web.FileResponse:
    """The web console's page."""
    return web.FileResponse(STATIC / "index.html")


def all_routes() -> tuple[RouteSpec, ...]:
    """Every route the application serves (the OpenAPI document lists exactly these)."""
    return (
        *API_ROUTES,
        RouteSpec("GET", "/openapi.json", get_openapi, "This document", access="public"),
        RouteSpec(
            "GET", "/metrics", get_metrics, "Prometheus metrics (text format)",
            access="public", returns="text",
        ),
        RouteSpec("GET", "/", get_console, "The web console", access="public", returns="text"),
    )  # fmt: skip


def _metrics_middleware(services: WebServices) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            services.metrics.inc(
                "callscript_http_requests_total",
                method=request.method,
                route=route,
                **{"class": status_class(status)},
            )

    return count


@web.middleware
async def _headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in _SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    return response


def build_app(services: WebServices) -> web.Application:
    """The aiohttp application serving the API and console with ``services``."""
    app = web.Application(
        middlewares=[_metrics_middleware(services), _headers_middleware, errors_middleware],
        client_max_size=services.config.max_upload,
    )
    app[SERVICES] = services
    app[AUTH] = Authenticator(services)
    for route in all_routes():
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app


def bind_engine_metrics(metrics: Metrics, host: ScriptHost | None) -> None:
    """Read the sandbox pool's and script host's own counters into ``metrics`` at render time
    (worker restarts, quarantines, violations by kind, reloads, live scripts)."""
    if host is None:
        return
    pool = host.pool

    def one(value: float) -> Sequence[Sample]:
        return [(EMPTY_LABELS, float(value))]

    metrics.counter_from(
        "callscript_sandbox_worker_restarts_total", lambda: one(pool.stats.restarts)
    )
    metrics.counter_from("callscript_script_quarantines_total", lambda: one(pool.stats.quarantined))
    metrics.counter_from("callscript_script_reloads_total", lambda: one(host.reloads))
    metrics.gauge_from("callscript_scripts_live", lambda: one(len(host.registry)))
    metrics.counter_from(
        "callscript_script_violations_total",
        lambda: [({"kind": kind}, float(n)) for kind, n in sorted(pool.stats.failures.items())],
    )


def install_stored_overrides(services: WebServices) -> None:
    """Lay the overrides stored through the API over the policy file, as at the last stop."""
    overrides = services.overrides.all()
    if not overrides:
        return
    try:
        services.install_policy(apply_overrides(services.policy, overrides))
    except ConfigError as exc:
        # The policy file changed under them: run on the file alone and say why.
        log.error("policy overrides set through the API no longer apply: %s", exc)


@dataclass
class WebRunner:
    """The running API: where it listens, and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:8080``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening and finish the requests in flight."""
        await self.runner.cleanup()


async def start_web(services: WebServices) -> WebRunner:
    """Serve the API and console on ``services.config.listen``.

    Raises:
        ConfigError: the TLS certificate or key cannot be loaded.
        OSError: the address cannot be bound.
    """
    config = services.config
    host, port = config.address()
    context = None
    if config.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"web TLS certificate or key unusable: {exc}") from None
    services.tokens.expire(now=services.now())
    install_stored_overrides(services)
    bind_engine_metrics(services.metrics, services.host)
    runner = web.AppRunner(build_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    web_runner = WebRunner(runner, host, bound, context is not None)
    log.info("management API and console on %s", web_runner.url)
    return web_runner
