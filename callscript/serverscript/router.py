"""Routing every request through the admin's ``route(event)`` handler.

:class:`ScriptRouter` is the engine's :class:`~callscript.engine.router.Router`
with ``route`` replaced: the proxy core, the stores, the digest servers, the
resolver and the per-user script host are the ones ``callscript serve`` builds,
and ``event.action.default()`` is the serve routing itself.

An ``async def`` handler runs as a task on the loop. A plain ``def`` handler
runs in a worker thread of the runtime's pool and its actions are bridged to
the loop (bridge.py). When the handler returns without deciding, the caller
gets the response of its last failed ``proxy()``, else a 500 (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from callscript.engine.router import Router
from callscript.serverscript.actions import Actions
from callscript.serverscript.bridge import BlockingActions
from callscript.serverscript.call import CallEnded, RoutedRequest
from callscript.serverscript.event import Event
from callscript.sip.events import Peer
from callscript.sip.message import Request
from callscript.sip.proxy.events import RoutingNeeded

log = logging.getLogger("callscript.serverscript")

Handler = Callable[[Event[Any]], Awaitable[None] | None]


def is_async_handler(handler: object) -> bool:
    """Whether ``handler`` is an ``async def`` function (or an object with one as ``__call__``)."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - looking for an async __call__
    )


class ScriptRouter(Router):
    """The serve router with ``route`` handed to a server script's handler."""

    def __init__(self, base: Router, handler: Handler, executor: ThreadPoolExecutor) -> None:
        super().__init__(
            base.driver,
            base.config,
            base.policy,
            location=base.location,
            accounts=base.accounts,
            auth_for=base.auth_for,
            resolver=base.resolver,
            ids=base.ids,
            wall_clock=base.wall_clock,
            scripts=base.scripts,
            script_settings=base.script_settings,
        )
        self.handler = handler
        self.executor = executor
        self.blocking = not is_async_handler(handler)

    async def route(self, event: RoutingNeeded) -> None:
        """Hand the request to the handler, then make sure it got an answer."""
        call = RoutedRequest(event.ctx, event.request, event.source, event.in_dialog)
        actions = Actions(self, call)
        failed = False
        try:
            if self.blocking:
                loop = asyncio.get_running_loop()
                blocking = BlockingActions(actions, call, loop)
                await loop.run_in_executor(
                    self.executor, self._run_blocking, Event(self, call, blocking)
                )
            else:
                result = self.handler(Event(self, call, actions))
                if result is not None:
                    await result
        except Exception:  # the admin's code: log it, answer the caller, keep serving
            request = call.request
            log.exception(
                "route() failed on %s %s (call-id %s)", request.method, request.uri, request.call_id
            )
            failed = True
        finally:
            # Whatever happened, a blocking handler still running must not act any more.
            call.end()
        self._settle(call, failed)

    def _run_blocking(self, event: Event[BlockingActions]) -> None:
        with contextlib.suppress(CallEnded):  # the request went away; nothing left to do
            self.handler(event)

    def _settle(self, call: RoutedRequest, failed: bool) -> None:
        if call.forwarded_stateless:
            return
        context = self.core.context(call.ctx)
        if (
            context is None
            or context.final_sent
            or context.caller_cancelled
            or context.proxying
            or context.live_branches()
        ):
            return
        if call.last is not None:
            self.forward(call.ctx, call.last)
            return
        if failed:
            self.reply(call.ctx, 500, "Server Internal Error (the routing script failed)")
            return
        request = call.request
        log.warning(
            "route() decided nothing for %s %s (call-id %s): answering 500",
            request.method,
            request.uri,
            request.call_id,
        )
        self.reply(call.ctx, 500, "Server Internal Error (the routing script decided nothing)")

    async def default_route(self, call: RoutedRequest) -> None:
        """Route ``call`` the way ``callscript serve`` does."""
        await super().route(RoutingNeeded(call.ctx, call.request, call.source, call.in_dialog))

    def forward_stateless(self, call: RoutedRequest, copy: Request, peer: Peer) -> None:
        """Send ``copy`` statelessly and let the core forget the request (RFC 3261 §16.11).

        The core keeps a server transaction for every request it hands over; no
        response of ours will ever end this one, so it is ended silently: the
        context closes, and a retransmission comes to the handler as a new request.
        """
        core = self.core
        core.send_stateless(copy, peer)
        call.forwarded_stateless = True
        core.layer.terminate(call.ctx)
        # Lets the core take the layer's TransactionTerminated now (fires only timers due anyway).
        core.handle_timers(now=self.driver.now)
        self.driver.after_input()
        log.info(
            "%s %s call-id %s forwarded statelessly to %s %s:%d",
            copy.method,
            copy.uri,
            copy.call_id,
            peer.transport,
            peer.host,
            peer.port,
        )

    async def close(self) -> None:
        """Stop routing: cancel every handler still deciding, stop the worker threads."""
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)
