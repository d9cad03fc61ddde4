"""What a scenario call receives, in order, and how a failed step says what came instead.

Each call has an :class:`Inbox`: responses to its requests and requests of
its Call-ID arrive in it as :class:`Arrival` items (a 2xx that never got its
ACK as :class:`Lost`). An ``expect`` step takes the next item; a skipped
optional step *holds* it for the next step and remembers what it expected,
so that the step which finally fails lists everything that would have been
accepted: ``step 4 expected 100/180/183/200, got 486 Busy Here``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from callscript.errors import CallscriptError
from callscript.sip.dialog import DialogId
from callscript.sip.message import Request, Response
from callscript.transaction import ServerTransaction


class ScenarioFailed(CallscriptError):
    """A step of a scenario failed: ``step`` (its number) and ``text`` (what went wrong)."""

    def __init__(self, step: int, text: str) -> None:
        super().__init__(f"step {step} {text}")
        self.step = step
        self.text = text


@dataclass(frozen=True, slots=True)
class Arrival:
    """Something for the scenario: a response, or a request with its transaction."""

    message: Request | Response
    txn: ServerTransaction | None = None

    def wanted(self, what: Collection[int | str]) -> bool:
        """Whether the message is a response with a status, or a request with a method, in ``what``."""
        message = self.message
        if isinstance(message, Response):
            return message.status in what
        return message.method in what


@dataclass(frozen=True, slots=True)
class Lost:
    """Our 2xx in ``dialog`` got no ACK within 64*T1 (RFC 3261 §13.3.1.4)."""

    dialog: DialogId


Item = Arrival | Lost


def describe(item: Item | None, waited: float | None) -> str:
    """How a failure message names what arrived (``got 486 Busy Here``, ``got BYE request``)."""
    if item is None:
        return "got nothing" + (f" within {waited:g} s" if waited is not None else "")
    if isinstance(item, Lost):
        return "got no ACK for our 2xx"
    message = item.message
    if isinstance(message, Response):
        return f"got {message.status} {message.reason}".rstrip()
    return f"got {message.method} request"


class Inbox:
    """The items of one call, with the one an optional step held back."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._held: Item | None = None
        self.skipped: list[str] = []

    def put(self, item: Item) -> None:
        """Add an item at the end."""
        self._queue.put_nowait(item)

    def hold(self, item: Item) -> None:
        """Keep ``item`` for the next step (an optional step did not want it)."""
        self._held = item

    async def next(self, deadline: float) -> Item | None:
        """The held item, else the next to arrive before ``deadline`` (loop clock), else ``None``."""
        if self._held is not None:
            item, self._held = self._held, None
            return item
        try:
            async with asyncio.timeout_at(deadline):
                return await self._queue.get()
        except TimeoutError:
            return None

    def failure(
        self, step: int, what: Sequence[int | str], item: Item | None, waited: float
    ) -> ScenarioFailed:
        """The error of step ``step``, listing what the skipped optional steps wanted too."""
        expected = "/".join(dict.fromkeys([*self.skipped, *(str(w) for w in what)]))
        self.skipped.clear()
        return ScenarioFailed(step, f"expected {expected}, {describe(item, waited)}")
