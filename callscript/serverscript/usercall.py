"""Running a user's sandboxed script from a server script, optionally narrowed.

``event.action.user_script()`` runs the per-user script the way ``callscript
serve`` does (engine.scripted.ScriptedCall: sandbox workers, replay, audit). The
admin may narrow what it can do: with ``allow=('proxy', 'reject')`` a script
that asks for a redirect gets nothing and the call comes back to the handler as
if the script had asked for default routing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callscript.engine.scripted import ScriptedCall
from callscript.engine.scripts import ScriptVersion
from callscript.sandbox.actions import (
    Accept,
    Default,
    Disposition,
    Proxy,
    Redirect,
    Reject,
    Voicemail,
)
from callscript.serverscript.call import RoutedRequest

if TYPE_CHECKING:
    from callscript.serverscript.router import ScriptRouter

log = logging.getLogger("callscript.serverscript")

# What a user script may be allowed to do; all of it unless the admin narrows it.
USER_ACTIONS = frozenset({"proxy", "redirect", "reject", "accept", "voicemail"})


class ScriptResult(enum.Enum):
    """What ``user_script()`` returns (as its value)."""

    NONE = "none"
    """The user has no script: route the request yourself."""
    DONE = "done"
    """The script answered or proxied the request: nothing is left to do."""
    DEFAULT = "default"
    """The script asked for default routing, failed with a default fallback, or did
    something the admin did not allow: route the request yourself."""


def _kind(disposition: Disposition) -> str | None:
    match disposition:
        case Proxy():
            return "proxy"
        case Redirect():
            return "redirect"
        case Reject():
            return "reject"
        case Accept():
            return "accept"
        case Voicemail():
            return "voicemail"
    return None


class NarrowedCall(ScriptedCall):
    """A :class:`ScriptedCall` that carries out only the dispositions in ``allow``."""

    def __init__(
        self,
        router: ScriptRouter,
        call: RoutedRequest,
        script: ScriptVersion,
        *,
        direction: str,
        contacts: Sequence[str],
        allow: frozenset[str],
    ) -> None:
        scripts = router.scripts
        assert scripts is not None  # run_user_script checked
        super().__init__(
            router,
            scripts.pool,
            scripts.audit,
            router.script_settings,
            ctx=call.ctx,
            request=call.request,
            script=script,
            direction=direction,
            contacts=contacts,
            wall_clock=router.wall_clock,
        )
        self.allow = allow
        self.refused: str | None = None

    def _refuse(self, kind: str) -> None:
        self.refused = kind
        log.warning(
            "script %s may not %s here; call %s goes back to the server script",
            self.script.name,
            kind,
            self.request.call_id,
        )

    async def _finish(self, disposition: Disposition) -> Disposition | None:
        kind = _kind(disposition)
        if kind is not None and kind not in self.allow:
            self._refuse(kind)
            return Default()
        return await super()._finish(disposition)

    async def _proxy(self, proxy: Proxy, *, final: bool) -> tuple[str, tuple[str, ...]]:
        # Final proxies come from _finish, already checked; a proxy() inside the script is not final.
        if not final and "proxy" not in self.allow:
            self._refuse("proxy")
            return "failure", ()
        return await super()._proxy(proxy, final=final)


async def run_user_script(
    router: ScriptRouter, call: RoutedRequest, direction: str, allow: frozenset[str]
) -> ScriptResult:
    """Run the script of the callee (``incoming``) or the caller (``outgoing``) for ``call``."""
    request = call.request
    scripts = router.scripts
    if scripts is None or request.method in ("ACK", "CANCEL"):
        return ScriptResult.NONE
    owner = request.uri if direction == "incoming" else request.from_addr.uri
    script = scripts.lookup(owner)
    if script is None:
        return ScriptResult.NONE
    contacts = [b.contact for b in router.location.bindings(owner.aor, now=router.wall_clock())]
    user_call = NarrowedCall(
        router, call, script, direction=direction, contacts=contacts, allow=allow
    )
    disposition = await user_call.run()
    return ScriptResult.DEFAULT if disposition is not None else ScriptResult.DONE
