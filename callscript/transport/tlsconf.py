"""SSL contexts for SIP over TLS (RFC 3261 §26.2.1; RFC 5630 for sips).

A server context needs our certificate chain and key. A client context
verifies the server's certificate against the trust anchors (the system
store unless ``cafile`` is given) and checks the name it was asked to reach;
tests may switch verification off or trust a self-signed certificate.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from callscript.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Certificates and verification for TLS.

    Args:
        certfile: our certificate chain (PEM); required to listen on TLS, and
            presented as a client certificate when given.
        keyfile: the private key (PEM); ``None`` when ``certfile`` holds it.
        cafile: trust anchors (PEM) for verifying peers; ``None``: the system store.
        verify_peer: verify the certificates of servers we connect to. Leave it
            on except in tests against throwaway certificates.
        require_client_cert: ask inbound clients for a certificate and verify it.
    """

    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    verify_peer: bool = True
    require_client_cert: bool = False


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """The context of a TLS listener.

    Raises:
        ConfigError: no certificate configured, or it cannot be loaded.
    """
    if not config.certfile:
        raise ConfigError("a TLS listener needs a certificate (tls.certfile)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, config)
    if config.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_anchors(context, config, ssl.Purpose.CLIENT_AUTH)
    return context


def client_context(config: TlsConfig) -> ssl.SSLContext:
    """The context for connections we open.

    Raises:
        ConfigError: a configured file cannot be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks host names
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.verify_peer:
        _load_anchors(context, config, ssl.Purpose.SERVER_AUTH)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.certfile:
        _load_chain(context, config)
    return context


def _load_chain(context: ssl.SSLContext, config: TlsConfig) -> None:
    try:
        context.load_cert_chain(config.certfile or "", config.keyfile)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load TLS certificate {config.certfile!r}: {exc}") from exc


def _load_anchors(context: ssl.SSLContext, config: TlsConfig, purpose: ssl.Purpose) -> None:
    try:
        if config.cafile:
            context.load_verify_locations(cafile=config.cafile)
        else:
            context.load_default_certs(purpose)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load TLS trust anchors {config.cafile!r}: {exc}") from exc
