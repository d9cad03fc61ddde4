"""Wiring: build every part of the server from a ServerConfig and run it.

Nothing else in callscript builds long-lived objects; they are made here and
passed in (STYLE §6).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from callscript.engine.config import ServerConfig
from callscript.engine.driver import Driver
from callscript.engine.memory import CollectorTuning
from callscript.engine.router import Router, RoutingPolicy
from callscript.engine.scripted import ScriptSettings
from callscript.engine.scripthost import ScriptHost
from callscript.errors import TransportError
from callscript.metrics import Metrics
from callscript.sandbox.policy import find_policy
from callscript.sandbox.pool import SandboxPool
from callscript.sip.auth import DigestServer
from callscript.sip.ids import IdSource, RandomIds
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.core import ProxyCore
from callscript.sip.registrar import RegistrarPolicy
from callscript.store.calllog import SqliteCallLog
from callscript.store.sqlite import SqliteStore
from callscript.store.versions import SqliteVersionStore
from callscript.transport.endpoint import TransportConfig
from callscript.transport.manager import TransportManager
from callscript.transport.resolver import Resolver
from callscript.transport.tlsconf import TlsConfig
from callscript.web.app import WebRunner, bind_engine_metrics, start_web
from callscript.web.overrides import OverrideStore, apply_overrides
from callscript.web.services import WebServices
from callscript.web.tokens import TokenStore

log = logging.getLogger("callscript.server")


@dataclass
class Server:
    """A running ``callscript serve``: transports, core, driver, router and store."""

    config: ServerConfig
    ids: IdSource = field(default_factory=RandomIds)
    store: SqliteStore | None = None
    transports: TransportManager | None = None
    driver: Driver | None = None
    router: Router | None = None
    scripts: ScriptHost | None = None
    memory: CollectorTuning | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # Builds the router: whole-server scripts (callscript.serverscript) pass a Router subclass.
    make_router: Callable[..., Router] = Router
    web: WebRunner | None = None
    addresses: list[tuple[str, str, int]] = field(default_factory=list)
    _auth: dict[str, DigestServer] = field(default_factory=dict)

    async def start(self) -> None:
        """Open the database and the listeners, then start serving."""
        config = self.config
        loop = asyncio.get_running_loop()
        self.store = SqliteStore(config.database)
        transport_config = TransportConfig(
            udp_max_size=config.max_message_size,
            stream_max_size=config.max_message_size,
            udp_rcvbuf=config.udp_rcvbuf,
            tls=TlsConfig(certfile=config.tls_cert, keyfile=config.tls_key),
        )
        transports = self.transports = TransportManager(transport_config)
        for listen in config.listen:
            listener = await transports.listen(
                listen.transport.upper(), listen.host, listen.port, advertise=config.advertise
            )
            host, port = listener.host, listener.port
            self.addresses.append((listen.transport.upper(), host, port))
            log.info("listening on %s %s:%d", listen.transport.upper(), host, port)
        proxy_config = self._proxy_config()
        core = ProxyCore(proxy_config, self.ids)
        driver = self.driver = Driver(
            core,
            transports,
            loop=loop,
            max_message_size=config.max_message_size,
            metrics=self.metrics,
        )
        nameservers = [_nameserver(text) for text in config.nameservers] or None
        secret = (config.auth_secret or secrets.token_hex(32)).encode()
        policy = RoutingPolicy(
            trusted_networks=config.trusted_networks,
            register_requires_auth=config.register_requires_auth,
            ring_timeout=config.ring_timeout,
            registrar=RegistrarPolicy(
                config.default_expires, config.min_expires, config.max_expires
            ),
        )

        def auth_for(domain: str) -> DigestServer:
            realm = config.realm or domain.lower()
            server = self._auth.get(realm)
            if server is None:
                server = self._auth[realm] = DigestServer(
                    realm,
                    secret,
                    self.ids,
                    nonce_ttl=config.nonce_ttl,
                    algorithms=config.auth_algorithms,
                    # RFC 3261 §22.4 makes the uri check a MAY: proxies rewrite the Request-URI
                    # and clients (sipp among them) put the next hop there. The digest still
                    # covers the uri the client sent.
                    check_uri=False,
                )
            return server

        database = self.store.database
        overrides = OverrideStore(database)
        file_policy, where = find_policy(config.sandbox_policy)
        log.info("sandbox policy from %s", where)
        # Per-domain overrides set through the management API apply before any script loads.
        sandbox_policy = apply_overrides(file_policy, overrides.all())
        call_log = SqliteCallLog(database, keep=config.web.call_log_size)
        if config.scripts_enabled:
            pool = SandboxPool(sandbox_policy, served_domains=config.domains)
            self.scripts = ScriptHost(
                Path(config.scripts_dir), sandbox_policy, pool, self.store.audit
            )
            await self.scripts.start()
        self.router = self.make_router(
            driver,
            proxy_config,
            policy,
            location=self.store.location,
            accounts=self.store.accounts,
            auth_for=auth_for,
            resolver=_resolver(nameservers),
            ids=self.ids,
            scripts=self.scripts,
            script_settings=ScriptSettings(voicemail=config.voicemail, timezone=config.timezone),
            metrics=self.metrics,
            call_log=call_log,
        )
        driver.dispatch = self.router.dispatch
        transports.on_message = driver.on_message
        transports.on_error = driver.on_transport_error
        if config.web.enabled:
            self.web = await start_web(
                WebServices(
                    accounts=self.store.accounts,
                    audit=self.store.audit,
                    versions=SqliteVersionStore(database),
                    calls=call_log,
                    tokens=TokenStore(database),
                    overrides=overrides,
                    scripts_dir=Path(config.scripts_dir),
                    policy=file_policy,
                    metrics=self.metrics,
                    domains=config.domains,
                    host=self.scripts,
                    realm=config.realm,
                    auth_secret=config.auth_secret.encode() if config.auth_secret else None,
                    config=config.web,
                )
            )
        else:
            bind_engine_metrics(self.metrics, self.scripts)
        self.memory = CollectorTuning()
        self.memory.start()
        log.info("serving domains %s", ", ".join(config.domains))

    def _proxy_config(self) -> ProxyConfig:
        config = self.config
        via: dict[str, tuple[str, int]] = {}
        hosts = {h.lower() for h in config.domains if _is_ip(h)}
        hosts.update({"localhost"} if any(_is_loopback(h) for _, h, _ in self.addresses) else set())
        ports: set[int] = set()
        for transport, host, port in self.addresses:
            shown = config.advertise or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
            via.setdefault(transport, (f"[{shown}]" if ":" in shown else shown, port))
            hosts.add(f"[{host}]" if ":" in host else host)
            hosts.add(f"[{shown}]" if ":" in shown else shown)
            ports.add(port)
        return ProxyConfig(
            domains=frozenset(config.domains),
            local_hosts=frozenset(h.lower() for h in hosts),
            local_ports=frozenset(ports),
            via=via,
            record_route=config.record_route,
            timers=config.timers,
        )

    async def stop(self) -> None:
        """Close the listeners and the database."""
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.memory is not None:
            self.memory.stop()
            self.memory = None
        if self.driver is not None:
            self.driver.close()
        if self.scripts is not None:
            await self.scripts.stop()
            self.scripts = None
        if self.transports is not None:
            await self.transports.close()
        if self.store is not None:
            self.store.close()
            self.store = None


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(text: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        return False


def _resolver(nameservers: list[tuple[str, int]] | None) -> Resolver:
    try:
        return Resolver(nameservers)
    except TransportError:
        # No system DNS configuration: numeric hosts still work; names fail to resolve.
        log.warning("no DNS configuration found; only numeric hosts will resolve")
        return Resolver([("127.0.0.1", 53)])


def _nameserver(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return text, 53
    return host.strip("[]"), int(port)


async def serve(config: ServerConfig, stop: asyncio.Event) -> int:
    """Run a server until ``stop`` is set; returns the exit code."""
    server = Server(config)
    try:
        await server.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await server.stop()
        return 1
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await server.stop()
    return 0
