"""Server configuration: embedded defaults, overridden by a TOML file (see callscript.example.toml)."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from callscript.errors import ConfigError
from callscript.sip.timers import TimerConfig
from callscript.web.config import WebConfig, parse_web_config

TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True, slots=True)
class Listen:
    """One listening socket: ``transport`` (udp, tcp, tls), ``host`` and ``port``."""

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """Parse ``udp:127.0.0.1:5060``, ``tcp:[::1]:5060`` or ``tls:0.0.0.0:5061``."""
        transport, _, rest = text.partition(":")
        host, _, port = rest.rpartition(":")
        transport = transport.lower()
        if (
            transport not in TRANSPORTS
            or not host
            or not port.isdigit()
            or not 0 <= int(port) < 65536
        ):
            raise ConfigError(
                f"bad listen address {text!r} (expected transport:host:port, e.g. udp:127.0.0.1:5060)"
            )
        return cls(transport, host.strip("[]"), int(port))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``callscript serve`` needs; every field has an embedded default."""

    listen: tuple[Listen, ...] = (
        Listen("udp", "127.0.0.1", 5060),
        Listen("tcp", "127.0.0.1", 5060),
    )
    domains: tuple[str, ...] = ("localhost", "example.com")
    advertise: str | None = None
    database: str = "callscript.db"
    scripts_dir: str = "user_scripts"
    scripts_enabled: bool = True
    sandbox_policy: str | None = None
    voicemail: str = "sip:{user}@voicemail.{domain}"
    timezone: str = "UTC"
    trusted_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    record_route: bool = True
    ring_timeout: float = 30.0
    timers: TimerConfig = field(default_factory=TimerConfig)
    realm: str | None = None
    auth_secret: str | None = None
    nonce_ttl: float = 300.0
    auth_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    register_requires_auth: bool = True
    min_expires: int = 60
    default_expires: int = 3600
    max_expires: int = 86400
    nameservers: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    udp_rcvbuf: int = 4 * 1024 * 1024
    max_message_size: int = 65535
    log_json: bool = False
    uvloop: bool = True
    web: WebConfig = field(default_factory=WebConfig)

    def __post_init__(self) -> None:
        for network in self.trusted_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(f"bad trusted network {network!r}") from None
        if any(listen.transport == "tls" for listen in self.listen) and not (
            self.tls_cert and self.tls_key
        ):
            raise ConfigError("a tls listener needs tls.cert and tls.key")
        if not self.domains:
            raise ConfigError("serve at least one domain")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {self.timezone!r}: {exc}") from None
        if "\r" in self.voicemail or "\n" in self.voicemail:
            raise ConfigError("scripts.voicemail must be one line")


def load_config(path: str | Path | None, **overrides: Any) -> ServerConfig:
    """The embedded defaults, then ``path`` (TOML) if given, then ``overrides``.

    Raises:
        ConfigError: an unreadable file, an unknown key or a bad value (named with its section).
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        values = _flatten(data, str(path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return replace(ServerConfig(), **values)
    except TypeError as exc:
        raise ConfigError(f"bad configuration: {exc}") from None


# TOML section.key -> ServerConfig field, with a converter.
_KEYS: dict[str, tuple[str, Any]] = {
    "server.listen": ("listen", lambda v: tuple(Listen.parse(x) for x in v)),
    "server.domains": ("domains", lambda v: tuple(str(x).lower() for x in v)),
    "server.advertise": ("advertise", str),
    "server.database": ("database", str),
    "server.scripts_dir": ("scripts_dir", str),
    "scripts.dir": ("scripts_dir", str),
    "scripts.enabled": ("scripts_enabled", bool),
    "scripts.policy": ("sandbox_policy", str),
    "scripts.voicemail": ("voicemail", str),
    "scripts.timezone": ("timezone", str),
    "server.trusted_networks": ("trusted_networks", lambda v: tuple(str(x) for x in v)),
    "server.record_route": ("record_route", bool),
    "server.ring_timeout": ("ring_timeout", float),
    "server.log_json": ("log_json", bool),
    "server.uvloop": ("uvloop", bool),
    "auth.realm": ("realm", str),
    "auth.secret": ("auth_secret", str),
    "auth.nonce_ttl": ("nonce_ttl", float),
    "auth.algorithms": ("auth_algorithms", lambda v: tuple(str(x).upper() for x in v)),
    "auth.register_requires_auth": ("register_requires_auth", bool),
    "registrar.min_expires": ("min_expires", int),
    "registrar.default_expires": ("default_expires", int),
    "registrar.max_expires": ("max_expires", int),
    "dns.nameservers": ("nameservers", lambda v: tuple(str(x) for x in v)),
    "tls.cert": ("tls_cert", str),
    "tls.key": ("tls_key", str),
    "transport.udp_rcvbuf": ("udp_rcvbuf", int),
    "transport.max_message_size": ("max_message_size", int),
}
_TIMER_KEYS = ("t1", "t2", "t4", "timer_c")


def _flatten(data: dict[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    timers: dict[str, float] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: top-level key {section!r} must be a [section]")
        if section == "web":
            values["web"] = parse_web_config(table, where)
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if section == "timers" and key in _TIMER_KEYS:
                timers[key] = float(value)
                continue
            if name not in _KEYS:
                raise ConfigError(f"{where}: unknown setting {name!r}")
            field_name, convert = _KEYS[name]
            try:
                values[field_name] = convert(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: bad value for {name}: {exc}") from None
    if timers:
        try:
            values["timers"] = TimerConfig(**timers)
        except ValueError as exc:
            raise ConfigError(f"{where}: [timers]: {exc}") from None
    return values
