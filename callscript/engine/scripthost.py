"""The per-user scripts of a running server: the live registry, hot reload, the sandbox pool.

On start every script under the scripts directory is checked and the good ones
go live; from then on the watcher reloads a script when its file changes
(create, modify, delete, rename, editors' atomic saves). A version that fails to
compile leaves the previous one live; loads, rejects and deletions are logged
and audited with ``file:line:col``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from callscript.engine.scripts import (
    Change,
    Registry,
    ScriptVersion,
    owner_of,
    read_source,
    reload,
    scan,
    script_name,
)
from callscript.engine.watcher import ScriptWatcher
from callscript.sandbox.policy import Policy
from callscript.sandbox.pool import SandboxPool
from callscript.sip.uri import URI
from callscript.store.audit import AuditEntry, AuditLog

log = logging.getLogger("callscript.scripts")


class ScriptHost:
    """Owns the registry of live scripts and keeps it in step with the scripts directory."""

    def __init__(
        self,
        root: Path,
        policy: Policy,
        pool: SandboxPool,
        audit: AuditLog,
        *,
        wall_clock: Callable[[], float] = time.time,
        watch: bool = True,
    ) -> None:
        self.root = root
        self.policy = policy
        self.pool = pool
        self.audit = audit
        self.wall_clock = wall_clock
        self.registry = Registry()
        self.reloads = 0
        self._watch = watch
        self._watcher: ScriptWatcher | None = None
        pool.on_quarantine = self._quarantined

    async def start(self) -> None:
        """Load every script, start the sandbox workers and the file watcher."""
        await self.pool.start()
        for name in scan(self.root):
            self.apply(name, audit_loads=False)
        log.info("%d user scripts live from %s", len(self.registry), self.root)
        if self._watch:
            self._watcher = ScriptWatcher(self.root, asyncio.get_running_loop(), self.apply)
            self._watcher.start()

    async def stop(self) -> None:
        """Stop watching and stop the workers."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        await self.pool.close()

    def lookup(self, uri: URI) -> ScriptVersion | None:
        """The live script of the user ``uri`` names, if any."""
        name = script_name(uri)
        return self.registry.get(name) if name is not None else None

    def apply(self, name: str, *, audit_loads: bool = True) -> Change:
        """Re-read script ``name`` from disk and make it live (or keep the old version)."""
        max_size = self.policy.for_domain(name.partition("/")[0]).script.max_size
        source = read_source(self.root, name, max_size=max_size)
        self.registry, change = reload(self.registry, name, source, self.policy)
        if change.kind == "none":
            return change
        self.reloads += 1
        if change.kind == "reject":
            for problem in change.problems:
                log.error("script rejected, previous version stays live: %s", problem)
            first = change.problems[0]
            self._record(name, change.version, "reject", str(first), first.line)
        elif change.kind == "load":
            log.info("script %s version %s is live", name, change.version)
            if audit_loads:
                self._record(name, change.version, "load", "new version live")
        elif change.kind == "delete":
            log.info("script %s deleted; its owner gets default routing", name)
            self._record(name, change.version, "delete", "script removed")
        return change

    def _quarantined(self, name: str, digest: str) -> None:
        log.warning("script %s version %s is in quarantine", name, digest[:12])
        self._record(name, digest[:12], "quarantine", "too many violations in the policy's window")

    def _record(
        self, name: str, version: str, kind: str, message: str, line: int | None = None
    ) -> None:
        self.audit.record(
            AuditEntry(
                at=self.wall_clock(),
                owner=owner_of(name),
                script=name,
                version=version,
                kind=kind,
                message=message,
                line=line,
            )
        )
