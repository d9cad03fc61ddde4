"""Carrying out what a user's script decides for one call.

The script runs in the sandbox (callscript.sandbox) by replay: each step ends
with the handler waiting in ``proxy()`` (:class:`Pending`) or returning
(:class:`Finished`), or with a failure (:class:`StepFailed`, the policy's
fallback). This module turns those into proxy-core actions through the router
and feeds proxy outcomes back:

    2xx -> 'success'; 486, 600 -> 'busy'; 408, 480 (ring timeout) -> 'noanswer';
    3xx -> 'redirection' (its Contacts readable); anything else -> 'failure'.

A caller who hangs up cancels the task that runs this; the handler ends with it.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from callscript.engine.scripts import ScriptVersion
from callscript.sandbox.actions import (
    Accept,
    Default,
    Disposition,
    Finished,
    Log,
    Pending,
    Proxied,
    Proxy,
    Redirect,
    Reject,
    Relay,
    StepFailed,
    Voicemail,
    action_dict,
)
from callscript.sandbox.pool import SandboxPool, Script
from callscript.sandbox.protocol import event_data
from callscript.sip.address import Address
from callscript.sip.message import Request, Response
from callscript.sip.proxy.context import Target
from callscript.sip.uri import URI
from callscript.store.audit import AuditEntry, AuditLog
from callscript.store.calllog import CallLog, CallRecord

if TYPE_CHECKING:
    from callscript.engine.router import Router

log = logging.getLogger("callscript.scripts")


@dataclass(frozen=True, slots=True)
class ScriptSettings:
    """How the engine runs scripts: voicemail target template and the owners' time zone."""

    voicemail: str = "sip:{user}@voicemail.{domain}"
    timezone: str = "UTC"


def outcome_of(status: int) -> str:
    """The script-facing outcome of a proxy attempt that ended with ``status``."""
    if 200 <= status < 300:
        return "success"
    if status in (486, 600):
        return "busy"
    if status in (408, 480):
        return "noanswer"
    if 300 <= status < 400:
        return "redirection"
    return "failure"


class ScriptedCall:
    """One call (or other out-of-dialog request) steered by one user's script."""

    def __init__(
        self,
        router: Router,
        pool: SandboxPool,
        audit: AuditLog,
        settings: ScriptSettings,
        *,
        ctx: str,
        request: Request,
        script: ScriptVersion,
        direction: str,
        contacts: Sequence[str],
        wall_clock: Callable[[], float] = time.time,
        call_log: CallLog | None = None,
    ) -> None:
        self.router = router
        self.pool = pool
        self.audit = audit
        self.settings = settings
        self.ctx = ctx
        self.request = request
        self.script = script
        self.direction = direction
        self.contacts = list(contacts)
        self.wall_clock = wall_clock
        self.call_log = call_log
        self.last: Response | None = None
        self.trace: list[dict[str, Any]] = []
        self.status: int | None = None
        self.violation: str | None = None

    async def run(self) -> Disposition | None:
        """Run the script to its end and carry out its decision.

        Returns the final disposition when it is left to the caller (``Default``
        means: route as if there were no script), ``None`` when already done.
        The call is written to the owner's call log either way.
        """
        started = self.wall_clock()
        try:
            return await self._run()
        finally:
            self._record(started)

    def _record(self, started: float) -> None:
        if self.call_log is None:
            return
        self.call_log.record(
            CallRecord(
                at=started,
                owner=self.script.owner,
                call_id=self.request.call_id,
                method=self.request.method,
                direction=self.direction,
                caller=str(self.request.from_addr.uri),
                callee=str(self.request.uri),
                script=self.script.name,
                version=self.script.version,
                actions=tuple(self.trace),
                status=self.status,
                violation=self.violation,
                duration=self.wall_clock() - started,
            )
        )

    async def _run(self) -> Disposition | None:
        arrival = datetime.datetime.fromtimestamp(
            self.wall_clock(), ZoneInfo(self.settings.timezone)
        )
        event = event_data(
            self.request,
            direction=self.direction,
            owner=self.script.owner,
            contacts=self.contacts,
            time=arrival,
            hidden_headers=self.pool.policy.for_domain(self.script.domain).api.hidden_headers,
        )
        run = self.pool.call(
            Script(self.script.name, self.script.domain, self.script.source), event
        )
        result = await run.start()
        while True:
            self._log_lines(result.actions)
            self.trace += [action_dict(a) for a in result.actions if not isinstance(a, Log)]
            match result:
                case Pending(proxy=proxy):
                    outcome, targets = await self._proxy(proxy, final=False)
                    if self.trace and self.trace[-1].get("kind") == "proxy":
                        self.trace[-1]["outcome"] = outcome
                    result = await run.resume(outcome, targets)
                case Finished(disposition=disposition):
                    return await self._finish(disposition)
                case StepFailed():
                    self._audit_failure(result)
                    self.violation = f"{result.kind}: {result.message}"
                    self.trace.append({"kind": "fallback", **action_dict(result.fallback)})
                    return await self._finish(result.fallback)

    async def _finish(self, disposition: Disposition) -> Disposition | None:
        match disposition:
            case Proxied():
                return None  # the 2xx already went to the caller (status recorded then)
            case Relay():
                if self.last is not None:
                    self.status = self.last.status
                    self.router.forward(self.ctx, self.last)
                else:
                    self.status = 480
                    self.router.reply(self.ctx, 480)
                return None
            case Proxy():
                await self._proxy(disposition, final=True)
                return None
            case Redirect(targets=targets):
                contacts = [Address(URI.parse(t)) for t in targets]
                self.status = disposition.status
                self.router.reply(self.ctx, disposition.status, headers=[("Contact", contacts)])
                return None
            case Reject(code=code, reason=reason):
                self.status = code
                self.router.reply(self.ctx, code, reason)
                return None
            case Accept():
                self.status = 200
                self.router.reply(self.ctx, 200)
                return None
            case Voicemail():
                target = self.settings.voicemail.format(
                    user=_user(self.script.owner), domain=self.script.domain
                )
                await self._proxy(Proxy((target,), self.router.policy.ring_timeout), final=True)
                return None
            case Default():
                return disposition
        return disposition

    async def _proxy(self, proxy: Proxy, *, final: bool) -> tuple[str, tuple[str, ...]]:
        groups: list[list[Target]] = []
        for text in proxy.targets:
            uri = URI.parse(text)
            peers = await self.router.resolve(uri)
            if peers:
                target = Target(uri, peers)
                if proxy.sequential or not groups:
                    groups.append([target])
                else:
                    groups[0].append(target)
        if not groups:
            if final:
                self.router.reply(self.ctx, 480, "No reachable target")
            return "failure", ()
        completed = await self.router.proxy_and_wait(
            self.ctx, groups, ring_timeout=proxy.timeout, final=final
        )
        if completed is None:
            return "failure", ()
        self.last = completed.response
        if final or 200 <= completed.status < 300:
            self.status = completed.status
        outcome = outcome_of(completed.status)
        targets: tuple[str, ...] = ()
        if outcome == "redirection":
            targets = tuple(
                str(a.uri) for a in cast(list[Address], completed.response.get_all("Contact"))
            )
        return outcome, targets

    def _log_lines(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, Log):
                log.info(
                    "[%s %s] %s",
                    self.script.owner,
                    self.script.version,
                    action.text,
                    extra=self._log_fields(),
                )

    def _log_fields(self) -> dict[str, str]:
        # Structured logs (--log-json) carry these as fields of their own.
        return {
            "call_id": self.request.call_id,
            "user": self.script.owner,
            "script_version": self.script.version,
        }

    def _audit_failure(self, failed: StepFailed) -> None:
        log.warning(
            "script %s (%s) %s at line %s: %s; call %s gets the fallback",
            self.script.name,
            self.script.version,
            failed.kind,
            failed.line,
            failed.message,
            self.request.call_id,
            extra=self._log_fields(),
        )
        self.audit.record(
            AuditEntry(
                at=self.wall_clock(),
                owner=self.script.owner,
                script=self.script.name,
                version=self.script.version,
                kind=f"violation:{failed.kind}",
                line=failed.line,
                message=failed.message,
                call_id=self.request.call_id,
            )
        )


def _user(aor: str) -> str:
    return aor.partition(":")[2].partition("@")[0]
