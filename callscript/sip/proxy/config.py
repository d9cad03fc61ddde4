"""What the proxy core needs to know about itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from callscript.sip.timers import TimerConfig
from callscript.sip.uri import DEFAULT_PORTS, URI


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The proxy's identity and policy.

    Args:
        domains: the domains this proxy serves (lower-case); requests for them are routed
            by the engine (registrar, user scripts), others are relayed or refused.
        local_hosts: every host name or IP literal that means this proxy (lower-case,
            IPv6 with brackets), used to recognise our own Route and Via values.
        local_ports: the ports we listen on.
        via: the ``(host, port)`` written in our Via and Record-Route, per transport.
        record_route: add Record-Route to dialog-creating requests (RFC 3261 §16.6 step 4).
        supported: option tags the proxy understands (RFC 3261 §16.3 step 5).
        timers: T1/T2/T4 and Timer C.
    """

    domains: frozenset[str] = frozenset({"localhost"})
    local_hosts: frozenset[str] = frozenset({"127.0.0.1"})
    local_ports: frozenset[int] = frozenset({5060})
    via: dict[str, tuple[str, int]] = field(default_factory=lambda: {"UDP": ("127.0.0.1", 5060)})
    record_route: bool = True
    supported: frozenset[str] = frozenset()
    timers: TimerConfig = field(default_factory=TimerConfig)

    def is_local(self, uri: URI) -> bool:
        """True when ``uri`` names this proxy (host and port), RFC 3261 §16.4."""
        if not uri.is_sip or uri.host.lower() not in self.local_hosts:
            return False
        port = uri.port if uri.port is not None else DEFAULT_PORTS[uri.scheme]
        return port in self.local_ports

    def is_self(self, uri: URI) -> bool:
        """True when ``uri`` addresses the proxy itself: one of our hosts and no user part."""
        return (
            uri.is_sip
            and not uri.user
            and (uri.host.lower() in self.local_hosts or uri.host.lower() in self.domains)
        )

    def serves(self, uri: URI) -> bool:
        """True when ``uri`` is in one of our domains (or names the proxy itself)."""
        return uri.is_sip and (
            uri.host.lower() in self.domains or uri.host.lower() in self.local_hosts
        )

    def via_for(self, transport: str) -> tuple[str, int]:
        """The sent-by for a Via on ``transport`` (falls back to the first configured)."""
        return self.via.get(transport) or next(iter(self.via.values()))
