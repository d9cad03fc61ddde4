"""Transactions as the application sees them, and what the stack hands traffic to.

- :class:`ClientTransaction`: a request we sent; await its responses (RFC
  3261 §17.1). A timeout and a transport failure arrive as a 408 and a 503
  made up locally, as §8.1.3.1 tells the UAC to treat them.
- :class:`ServerTransaction`: a request we received; send its responses
  (RFC 3261 §17.2).
- :class:`Handler`: the protocol of what a :class:`~callscript.stack.Stack`
  gives incoming traffic to (a user agent, a scenario endpoint).
- :class:`RequestFailed`: a request ended with a non-2xx final response.

The retransmissions and timers are the stack's transaction layer's
(:class:`~callscript.sip.transaction.TransactionLayer`); these objects only
carry what the application sends and receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from callscript.errors import SipError
from callscript.sip.dialog import DialogId
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.reply import make_response

if TYPE_CHECKING:
    from callscript.stack import Stack


class Handler(Protocol):
    """What the stack hands incoming traffic to (a user agent, a scenario endpoint)."""

    def owns(self, dialog: DialogId) -> bool:
        """Whether the dialog (or, for scenarios, the Call-ID) is this handler's."""
        ...

    def accepts(self, request: Request) -> bool:
        """Whether a request outside any dialog is for this handler."""
        ...

    def on_request(self, txn: ServerTransaction) -> None:
        """A new request (not ACK) for this handler."""
        ...

    def on_ack(self, ack: Request) -> None:
        """An ACK for a 2xx in one of this handler's dialogs."""
        ...

    def on_cancel(self, invite: ServerTransaction, cancel: Request) -> None:
        """INVITE ``invite`` was cancelled by ``cancel`` (already answered 200)."""
        ...

    def on_stray_response(self, response: Response) -> None:
        """A response no transaction matched (a 2xx resent after the INVITE transaction ended)."""
        ...

    def on_answer_lost(self, dialog: DialogId) -> None:
        """A 2xx we sent in ``dialog`` got no ACK within 64*T1 (RFC 3261 §13.3.1.4)."""
        ...


class RequestFailed(SipError):
    """A request ended with a final response other than 2xx (a local 408 or 503 included).

    Attributes:
        request: the request as last sent.
        response: the final response.
        status: its status code.
    """

    def __init__(self, request: Request, response: Response, note: str = "") -> None:
        text = f"{request.method} {request.uri}: {response.status} {response.reason}{note}"
        super().__init__(text)
        self.request = request
        self.response = response
        self.status = response.status


class Transaction:
    """What client and server transactions share: the stack, the key and the request."""

    def __init__(self, stack: Stack, key: str, request: Request) -> None:
        self.stack = stack
        self.key = key
        self.request = request
        self.final: Response | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.key}>"


class ClientTransaction(Transaction):
    """A request we sent and the responses it gets (RFC 3261 §17.1).

    A transaction timeout arrives as a 408 and a transport failure as a 503,
    as RFC 3261 §8.1.3.1 tells the UAC to treat them; both carry a reason that
    says they were made up locally.
    """

    def __init__(self, stack: Stack, key: str, request: Request, peer: Peer) -> None:
        super().__init__(stack, key, request)
        self.peer = peer
        self._queue: asyncio.Queue[Response | None] = asyncio.Queue()

    async def response(self, timeout: float | None = None) -> Response | None:
        """The next response; ``None`` once the transaction ended and no more can come.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def final_response(self, timeout: float | None = None) -> Response:
        """The final response, skipping provisionals.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                response = await self._queue.get()
                if response is None:
                    return self.outcome()
                if response.status >= 200:
                    return response

    def outcome(self) -> Response:
        """The final response received, or a local 408 when the transaction ended without one."""
        return self.final or make_response(self.request, 408, "Request Timeout (transaction ended)")

    def cancel(self) -> None:
        """Cancel this INVITE as soon as RFC 3261 §9.1 allows (after a provisional)."""
        self.stack.cancel_request(self.key)

    def _put(self, response: Response | None) -> None:
        if response is not None and response.status >= 200 and self.final is None:
            self.final = response
        self._queue.put_nowait(response)


class ServerTransaction(Transaction):
    """A request we received and answer (RFC 3261 §17.2)."""

    def __init__(self, stack: Stack, key: str, request: Request, source: Peer) -> None:
        super().__init__(stack, key, request)
        self.source = source
        self.handler: Handler | None = None
        self.cancelled = False

    def send(self, response: Response) -> None:
        """Send ``response``; a final one after a final one is dropped."""
        if self.final is not None and not (
            200 <= response.status < 300 and 200 <= self.final.status < 300
        ):
            return
        if response.status >= 200:
            self.final = response
        self.stack.send_response(self.key, response)

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Sequence[tuple[str, object]] = (),
    ) -> Response:
        """Build a plain response with ``make_response`` and send it."""
        response = make_response(self.request, status, reason, to_tag=to_tag, headers=headers)
        self.send(response)
        return response
