"""What the management API works with: the server's stores, script host and metrics.

:class:`WebServices` is built once by the server (``engine/app.py``) from the
objects it already made and handed to :func:`callscript.web.app.start_web`;
the request handlers reach it through the application (``request.app[SERVICES]``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from callscript.engine.scripthost import ScriptHost
from callscript.metrics import Metrics
from callscript.sandbox.policy import Policy
from callscript.sandbox.pool import SandboxPool
from callscript.store.audit import AuditEntry, AuditLog
from callscript.store.base import AccountStore
from callscript.store.calllog import CallLog
from callscript.store.versions import VersionStore
from callscript.web.config import WebConfig
from callscript.web.limits import RateLimiter
from callscript.web.overrides import OverrideStore, apply_overrides
from callscript.web.tokens import TokenStore


@dataclass
class WebServices:
    """The server's parts the API uses.

    Attributes:
        accounts: digest accounts (HA1 per realm, role): who may sign in.
        audit: the audit log (``callscript audit`` reads the same).
        versions: script history and live pointers.
        calls: the per-user call log.
        tokens: bearer tokens and console sessions.
        overrides: per-domain policy overrides set through the API.
        scripts_dir: where live sources go (``<dir>/<domain>/<user>.py``).
        policy: the sandbox policy as loaded from its file (overrides are laid over it).
        host: the running script host (registry, hot reload, pool), or ``None`` when
            scripts are disabled (uploads are still checked and written; no simulation).
        metrics: the server's metrics.
        domains: the SIP domains served (accounts of other domains cannot sign in).
        realm: the digest realm of every domain, or ``None`` for realm = domain.
        auth_secret: key of the Digest nonce MAC (the server's ``auth.secret``), or
            ``None`` for a random one.
        wall_clock: epoch seconds, for stored times.
    """

    accounts: AccountStore
    audit: AuditLog
    versions: VersionStore
    calls: CallLog
    tokens: TokenStore
    overrides: OverrideStore
    scripts_dir: Path
    policy: Policy
    metrics: Metrics
    domains: tuple[str, ...]
    host: ScriptHost | None = None
    realm: str | None = None
    auth_secret: bytes | None = None
    wall_clock: Callable[[], float] = time.time
    config: WebConfig = field(default_factory=WebConfig)
    limiter: RateLimiter = field(default_factory=RateLimiter)

    @property
    def pool(self) -> SandboxPool | None:
        """The sandbox pool simulations run in."""
        return None if self.host is None else self.host.pool

    def effective_policy(self) -> Policy:
        """The policy scripts run under now (the file's, with the API's overrides)."""
        if self.host is not None:
            return self.host.policy
        return apply_overrides(self.policy, self.overrides.all())

    def install_policy(self, policy: Policy) -> None:
        """Make ``policy`` the one scripts are checked and run under."""
        if self.host is not None:
            self.host.policy = policy
            self.host.pool.policy = policy

    def realm_of(self, domain: str) -> str:
        """The digest realm of ``domain``'s accounts."""
        return self.realm or domain.lower()

    def realms(self) -> list[str]:
        """Every realm accounts may authenticate in, in the order of the domains."""
        return list(dict.fromkeys(self.realm_of(d) for d in self.domains))

    def now(self) -> float:
        """Wall-clock epoch seconds."""
        return self.wall_clock()

    def monotonic(self) -> float:
        """The loop's clock (rate limits, quarantine deadlines)."""
        return asyncio.get_running_loop().time()

    def record(
        self,
        kind: str,
        message: str,
        *,
        owner: str = "",
        script: str = "",
        version: str = "",
        line: int | None = None,
    ) -> None:
        """Append one entry to the audit log."""
        self.audit.record(
            AuditEntry(
                at=self.now(),
                owner=owner,
                script=script,
                version=version,
                kind=kind,
                message=message,
                line=line,
            )
        )


SERVICES: web.AppKey[WebServices] = web.AppKey("services", WebServices)
