"""``event.action`` of a plain ``def`` handler: the same actions as blocking calls.

A blocking handler runs in a worker thread of the runtime's pool (the event
loop never waits for it). Each action is handed to the loop with
``asyncio.run_coroutine_threadsafe`` and the thread waits for its result, so a
handler waiting in ``proxy()`` holds one thread for as long as the phone rings;
size the pool (``configure(threads=...)``) for the calls that wait at once.

When the request goes away (the caller cancelled, the server stops) the waiting
action raises :class:`~callscript.serverscript.call.CallEnded` in the thread;
the runtime catches it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from callscript.serverscript.actions import Actions, Headers
from callscript.serverscript.call import Authentication, CallEnded, RoutedRequest
from callscript.serverscript.forwarding import Targets
from callscript.sip.uri import URI

T = TypeVar("T")


class BlockingActions:
    """``event.action`` in a plain ``def`` handler; see :class:`Actions` for each action."""

    __slots__ = ("_actions", "_call", "_loop")

    def __init__(
        self, actions: Actions, call: RoutedRequest, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._actions = actions
        self._call = call
        self._loop = loop

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        call = self._call
        if call.ended:
            work.close()
            raise CallEnded(f"request {call.request.call_id} is gone")
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        call.waiting.add(future)
        if call.ended:  # it ended while the action was being handed over
            future.cancel()
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise CallEnded(f"request {call.request.call_id} is gone") from None
        finally:
            call.waiting.discard(future)

    def reply(
        self,
        code: int,
        reason: str | None = None,
        *,
        headers: Headers = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        """Answer with any response, 100-699."""
        self._run(
            self._actions.reply(code, reason, headers=headers, body=body, content_type=content_type)
        )

    def reject(self, code: int = 603, reason: str | None = None) -> None:
        """Answer with a final error response, ``code`` 400-699."""
        self._run(self._actions.reject(code, reason))

    def accept(self) -> None:
        """Answer 200 OK to a request other than INVITE."""
        self._run(self._actions.accept())

    def redirect(self, location: Targets | None = None, permanent: bool = False) -> None:
        """Answer 302 (301 when ``permanent``) with ``location`` as Contact."""
        self._run(self._actions.redirect(location, permanent))

    def record_route(self) -> None:
        """Put our Record-Route on what forward()/proxy() send."""
        self._run(self._actions.record_route())

    def loose_route(self) -> bool:
        """Whether the request follows a route set (see :meth:`Actions.loose_route`)."""
        return self._run(self._actions.loose_route())

    def forward(
        self,
        uri: Targets | None = None,
        *,
        next_hop: Targets | None = None,
        stateless: bool = False,
        timeout: float | None = None,
    ) -> bool:
        """Send the request on (see :meth:`Actions.forward`); returns at once."""
        return self._run(
            self._actions.forward(uri, next_hop=next_hop, stateless=stateless, timeout=timeout)
        )

    def proxy(
        self,
        timeout: float | None = None,
        location: Targets | None = None,
        sequential: bool = False,
    ) -> str:
        """Ring and wait for the outcome (see :meth:`Actions.proxy`)."""
        return self._run(self._actions.proxy(timeout, location, sequential))

    def default(self) -> None:
        """Route the request the way ``callscript serve`` does."""
        self._run(self._actions.default())

    def user_script(self, direction: str = "incoming", allow: Iterable[str] | None = None) -> str:
        """Run the per-user script (see :meth:`Actions.user_script`)."""
        return self._run(self._actions.user_script(direction, allow))

    def save(self) -> bool:
        """Store a REGISTER's bindings and answer it."""
        return self._run(self._actions.save())

    def lookup(self, aor: str | URI | None = None) -> list[URI]:
        """The registered contacts of ``aor``; they become event.location."""
        return self._run(self._actions.lookup(aor))

    def verify(self, proxy: bool | None = None) -> Authentication:
        """Check the digest credentials."""
        return self._run(self._actions.verify(proxy))

    def challenge(self, proxy: bool | None = None, stale: bool | None = None) -> None:
        """Answer with a digest challenge."""
        self._run(self._actions.challenge(proxy, stale))

    def __repr__(self) -> str:
        return repr(self._actions)
