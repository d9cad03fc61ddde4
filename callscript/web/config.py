"""Settings of the management API and web console (the ``[web]`` section of the server's TOML)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from callscript.errors import ConfigError


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Where the management API listens and what it allows.

    Attributes:
        enabled: serve the API and console at all.
        listen: ``host:port`` (``[::1]:8080`` for IPv6); port 0 picks a free one.
        tls_cert, tls_key: PEM files; with both, the API is served over HTTPS only.
        basic_on_loopback: accept Basic credentials and console sign-in (a password in
            the request) over plain HTTP from loopback clients; elsewhere only over TLS.
        max_upload: largest request body, bytes (a script upload included).
        uploads_per_minute: script uploads and rollbacks one user may make per minute.
        simulations_per_minute: simulations one user may run per minute.
        logins_per_minute: sign-in attempts (right or wrong) per client address per minute.
        call_log_size: newest calls kept per user.
        session_ttl: seconds a console session lasts.
        nonce_ttl: seconds a Digest nonce stays fresh.
        metrics_public: serve ``/metrics`` without credentials (scrapers on a trusted network).
    """

    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    tls_cert: str | None = None
    tls_key: str | None = None
    basic_on_loopback: bool = True
    max_upload: int = 256 * 1024
    uploads_per_minute: int = 20
    simulations_per_minute: int = 30
    logins_per_minute: int = 20
    call_log_size: int = 100
    session_ttl: float = 8 * 3600.0
    nonce_ttl: float = 300.0
    metrics_public: bool = True

    def __post_init__(self) -> None:
        self.address()  # raises ConfigError when malformed
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("web.tls_cert and web.tls_key go together")
        for name in ("max_upload", "uploads_per_minute", "simulations_per_minute"):
            if getattr(self, name) < 1:
                raise ConfigError(f"web.{name} must be at least 1")
        if self.logins_per_minute < 1 or self.call_log_size < 1:
            raise ConfigError("web.logins_per_minute and web.call_log_size must be at least 1")
        if self.session_ttl <= 0 or self.nonce_ttl <= 0:
            raise ConfigError("web.session_ttl and web.nonce_ttl must be positive")

    @property
    def tls(self) -> bool:
        """Whether the API is served over TLS."""
        return bool(self.tls_cert and self.tls_key)

    def address(self) -> tuple[str, int]:
        """``(host, port)`` of :attr:`listen`.

        Raises:
            ConfigError: not ``host:port``.
        """
        host, colon, port = self.listen.rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(f"bad web.listen {self.listen!r} (expected host:port)")
        return host, int(port)


def parse_web_config(table: Mapping[str, object], where: str = "config") -> WebConfig:
    """A :class:`WebConfig` from the ``[web]`` TOML table (unknown keys and wrong types refused).

    Raises:
        ConfigError: naming ``where: web.key``.
    """
    known = {f.name: f for f in fields(WebConfig)}
    changes: dict[str, object] = {}
    for key, value in table.items():
        spec = known.get(key)
        if spec is None:
            raise ConfigError(f"{where}: unknown setting 'web.{key}'")
        default = getattr(WebConfig(), key)
        expected: tuple[type, ...]
        if isinstance(default, bool):
            expected = (bool,)
        elif isinstance(default, int):
            expected = (int,)
        elif isinstance(default, float):
            expected = (int, float)
        else:
            expected = (str,)
        if type(value) not in expected:
            raise ConfigError(f"{where}: web.{key}: expected {expected[-1].__name__}")
        changes[key] = float(value) if isinstance(default, float) else value  # type: ignore[arg-type]
    return replace(WebConfig(), **changes)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address as a peer name shows it) is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0]).is_loopback
    except ValueError:
        return False
