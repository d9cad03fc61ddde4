"""User agents over a :class:`~callscript.stack.Stack`: register, call, answer, hang up.

The asyncio face of :class:`~callscript.sip.useragent.UserAgentCore`:

- :class:`UserAgent` registers (RFC 3261 §10.2), places calls
  (``await ua.invite(uri)`` -> :class:`Call`), sends OPTIONS and MESSAGE, and
  answers digest challenges (§22) on the way. Incoming INVITEs become
  :class:`IncomingCall` objects, handed to ``ua.on_invite`` or queued for
  ``await ua.incoming()``.
- :class:`Call` is one confirmed dialog: ``await call.bye()``, requests in
  the dialog, ``await call.wait_ended()`` for the peer's BYE.

The UAC ACKs every 2xx (§13.2.2.4), again for each retransmission, and ends
the extra dialogs of a forked INVITE with ACK and BYE. The UAS resends its
2xx until the ACK (§13.3.1.4, through the stack) and hangs up when none comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from callscript.call import Call, IncomingCall
from callscript.sip.address import Address
from callscript.sip.dialog import DialogId, DialogState
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI
from callscript.sip.useragent import ALLOW, Credentials, Local, UserAgentCore
from callscript.stack import Stack
from callscript.transaction import ClientTransaction, RequestFailed, ServerTransaction

log = logging.getLogger("callscript.agent")

Headers = Sequence[tuple[str, object]]


def _uri(value: URI | str) -> URI:
    return URI.parse(value) if isinstance(value, str) else value


class UserAgent:
    """A SIP user agent for one address-of-record, on a :class:`Stack`.

    Args:
        stack: the stack to send and receive on.
        aor: our address-of-record, e.g. ``sip:alice@example.com``.
        password: the digest password (challenges go unanswered without one).
        username: the digest username (default: the user part of ``aor``).
        proxy: an outbound proxy every request outside a dialog goes through.
        user_agent: the User-Agent / Server header.
    """

    def __init__(
        self,
        stack: Stack,
        aor: URI | Address | str,
        *,
        password: str | None = None,
        username: str | None = None,
        proxy: URI | str | None = None,
        user_agent: str | None = "callscript",
    ) -> None:
        self.stack = stack
        self.core = UserAgentCore(aor, ids=stack.ids, user_agent=user_agent)
        if password is not None:
            self.core.credentials = Credentials(username or self.core.aor.uri.user or "", password)
        self.proxy = _uri(proxy).with_params(lr=None) if proxy is not None else None
        self.on_invite: Callable[[IncomingCall], Awaitable[None]] | None = None
        self.on_message: Callable[[Request], None] | None = None
        self._incoming: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self._calls: dict[DialogId, Call] = {}
        self._pending: dict[str, IncomingCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reg_call_id = f"{stack.ids.call_id()}@callscript"
        self._reg_cseq = 0
        self._registrar: URI | None = None
        stack.attach(self)

    @property
    def aor(self) -> Address:
        """Our address-of-record."""
        return self.core.aor

    def close(self) -> None:
        """Detach from the stack and stop background work (calls are not hung up)."""
        self.stack.detach(self)
        for task in self._tasks:
            task.cancel()

    # -- requests outside a dialog ------------------------------------------------------

    async def request(
        self,
        method: str,
        uri: URI | str,
        *,
        headers: Headers = (),
        body: bytes = b"",
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request outside any dialog and return its final response, whatever it is."""
        return (await self._send(method, uri, headers, body, content_type, timeout))[1]

    async def options(self, uri: URI | str) -> Response:
        """Ask ``uri`` for its capabilities (RFC 3261 §11).

        Raises:
            RequestFailed: a final response other than 2xx.
        """
        return self._ok(await self._send("OPTIONS", uri, [("Accept", "application/sdp")]))

    async def message(
        self, uri: URI | str, text: str, *, content_type: str = "text/plain"
    ) -> Response:
        """Send an instant message (RFC 3428).

        Raises:
            RequestFailed: a final response other than 2xx.
        """
        return self._ok(await self._send("MESSAGE", uri, (), text.encode(), content_type))

    async def _send(
        self,
        method: str,
        uri: URI | str,
        headers: Headers,
        body: bytes = b"",
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> tuple[Request, Response]:
        target = _uri(uri)
        peer, local = await self._hop(target)
        request = self.core.new_request(
            method,
            target,
            local=local,
            route=self._route(),
            headers=headers,
            body=body,
            content_type=content_type,
        )
        return await self._exchange(request, peer, local, timeout)

    async def register(
        self, registrar: URI | str | None = None, *, expires: int = 3600
    ) -> Response:
        """Bind our Contact to our address-of-record for ``expires`` seconds (RFC 3261 §10.2).

        Args:
            registrar: the registrar's URI (default: our domain, ``sip:example.com``).
            expires: seconds; 0 removes the binding.

        Raises:
            RequestFailed: a final response other than 2xx.
        """
        aor = self.core.aor.uri
        target = (
            _uri(registrar)
            if registrar is not None
            else URI(aor.scheme, host=aor.host, port=aor.port)
        )
        peer, local = await self._hop(target)
        # RFC 3261 §10.2: To and From are the address-of-record; one Call-ID for every
        # registration of this UA, and a CSeq that goes up each time.
        self._reg_cseq += 1
        request = self.core.new_request(
            "REGISTER",
            target,
            local=local,
            to=self.core.aor,
            route=self._route(),
            call_id=self._reg_call_id,
            cseq=self._reg_cseq,
            contact=self.core.contact(local).with_params(expires=str(expires)),
            headers=[("Expires", expires)],
        )
        request, response = await self._exchange(request, peer, local)
        self._reg_cseq = request.cseq.number
        self._registrar = target
        return self._ok((request, response))

    async def unregister(self) -> Response:
        """Remove the binding :meth:`register` made (``expires=0``)."""
        return await self.register(self._registrar, expires=0)

    # -- calls we place -------------------------------------------------------------------

    async def invite(
        self,
        uri: URI | str,
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: Headers = (),
        timeout: float | None = None,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Call:
        """Call ``uri`` and return the call once answered and acknowledged.

        Args:
            body: the offer (usually SDP).
            timeout: seconds to wait for an answer before cancelling (RFC 3261 §9.1).
            on_provisional: called with each 1xx.

        Raises:
            RequestFailed: the call was rejected, cancelled or timed out.
        """
        target = _uri(uri)
        peer, local = await self._hop(target)
        request = self.core.new_request(
            "INVITE",
            target,
            local=local,
            route=self._route(),
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        deadline = None if timeout is None else self.stack.loop.time() + timeout
        while True:
            txn = self.stack.send_request(request, peer)
            response, cancelled = await self._final(txn, deadline, on_provisional)
            if 200 <= response.status < 300:
                call = await self._established(txn, response, local)
                if not cancelled:
                    return call
                # Answered as our CANCEL crossed it: the call was given up, so end it.
                await call._hang_up()
                raise RequestFailed(request, response, " (answered after the timeout; hung up)")
            self._drop_early(request.call_id)
            retry = None
            if response.status in (401, 407) and not cancelled:
                retry = self.core.authorize(request, response, local=local)
            if retry is None:
                raise RequestFailed(request, response, " (no answer in time)" if cancelled else "")
            request = retry

    async def _final(
        self,
        txn: ClientTransaction,
        deadline: float | None,
        on_provisional: Callable[[Response], None] | None,
    ) -> tuple[Response, bool]:
        cancelled = False
        while True:
            wait = None if deadline is None or cancelled else deadline - self.stack.loop.time()
            try:
                response = await txn.response(max(wait, 0.0) if wait is not None else None)
            except TimeoutError:
                txn.cancel()
                cancelled = True
                continue
            if response is None:
                return txn.outcome(), cancelled
            if response.status >= 200:
                return response, cancelled
            if response.status > 100 and response.to_addr.tag is not None:
                # RFC 3261 §12.1.2: a provisional with a To tag creates an early dialog.
                self.core.dialog_as_uac(txn.request, response)
            if on_provisional is not None:
                on_provisional(response)

    def _drop_early(self, call_id: str) -> None:
        for dialog in list(self.core.dialogs.values()):
            if dialog.id.call_id == call_id and dialog.state is DialogState.EARLY:
                self.core.forget(dialog)

    async def _established(self, txn: ClientTransaction, response: Response, local: Local) -> Call:
        invite = txn.request
        dialog = self.core.dialog_as_uac(invite, response)
        self._drop_early(invite.call_id)
        call = Call(self, dialog, invite=invite, local_body=invite.body, remote_body=response.body)
        self._calls[dialog.id] = call
        await call._acknowledge()
        self._spawn(self._watch(txn, call))
        return call

    async def _watch(self, txn: ClientTransaction, call: Call) -> None:
        """Take the INVITE's later responses: 2xx resent, or the answers of other forks."""
        acked = {call.id: call}
        while (response := await txn.response()) is not None:
            dialog_id = DialogId.of_response(response)
            if not 200 <= response.status < 300 or dialog_id is None:
                continue
            known = acked.get(dialog_id)
            if known is not None:
                # RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again.
                await known._acknowledge()
                continue
            # RFC 3261 §13.2.2.4: a 2xx from another fork is acknowledged, then ended with BYE.
            dialog = self.core.dialog_as_uac(txn.request, response)
            fork = acked[dialog.id] = Call(
                self, dialog, invite=txn.request, remote_body=response.body
            )
            self._calls[dialog.id] = fork
            await fork._acknowledge()
            self._spawn(fork._hang_up())

    # -- helpers ----------------------------------------------------------------------------

    def _route(self) -> list[Address]:
        return [Address(self.proxy)] if self.proxy is not None else []

    async def _hop(self, target: URI) -> tuple[Peer, Local]:
        peer = await self.stack.route(self.proxy or target)
        return peer, self.stack.local(peer)

    async def _exchange(
        self, request: Request, peer: Peer, local: Local, timeout: float | None = None
    ) -> tuple[Request, Response]:
        """Send ``request``, answering 401/407 with credentials; the last request and its final."""
        while True:
            response = await self.stack.send_request(request, peer).final_response(timeout)
            if response.status in (401, 407):
                # RFC 3261 §8.1.3.5: resend with credentials (§22.2, §22.3) when we can.
                retry = self.core.authorize(request, response, local=local)
                if retry is not None:
                    request = retry
                    continue
            return request, response

    def _call_of(self, dialog: DialogId | None) -> Call | None:
        return self._calls.get(dialog) if dialog is not None else None

    @staticmethod
    def _ok(exchange: tuple[Request, Response]) -> Response:
        request, response = exchange
        if not 200 <= response.status < 300:
            raise RequestFailed(request, response)
        return response

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("user agent task failed", exc_info=task.exception())

    # -- calls we receive ---------------------------------------------------------------------

    async def incoming(self) -> IncomingCall:
        """The next incoming call (when ``on_invite`` is not set)."""
        return await self._incoming.get()

    # -- the stack's Handler protocol --------------------------------------------------------

    def owns(self, dialog: DialogId) -> bool:
        """Whether ``dialog`` is one of ours."""
        return dialog in self.core.dialogs

    def accepts(self, request: Request) -> bool:
        """A request outside a dialog is ours when its Request-URI names our user (or none)."""
        user = request.uri.user if request.uri.is_sip else None
        return user is None or user == self.core.aor.uri.user

    def on_request(self, txn: ServerTransaction) -> None:
        """Answer a request, or hand an INVITE to the application."""
        request = txn.request
        error = self.core.check_request(request)
        if error is not None:
            txn.send(error)
            return
        dialog_id = DialogId.of_request(request)
        call = self._calls.get(dialog_id) if dialog_id is not None else None
        if call is not None:
            call._receive(txn)
            return
        if request.method == "INVITE":
            incoming = IncomingCall(self, txn)
            self._pending[txn.key] = incoming
            # RFC 3261 §17.2.1: the TU sends 100 (Trying) when it may not answer at once.
            txn.send(self.core.respond(request, 100))
            if self.on_invite is not None:
                self._spawn(self.on_invite(incoming))
            else:
                self._incoming.put_nowait(incoming)
            return
        if request.method == "MESSAGE" and self.on_message is not None:
            self.on_message(request)
        if dialog_id is None and request.method in ("BYE", "INFO", "UPDATE"):
            # RFC 3261 §12.2.2: these belong in a dialog; outside one there is none to match.
            txn.send(self.core.respond(request, 481))
            return
        headers: Headers = [("Allow", list(ALLOW))] if request.method == "OPTIONS" else ()
        txn.send(self.core.respond(request, 200, headers=headers))

    def on_ack(self, ack: Request) -> None:
        """The ACK for one of our 2xx: the answered call is up."""
        call = self._call_of(DialogId.of_request(ack))
        if call is not None:
            call._acked()

    def on_cancel(self, invite: ServerTransaction, cancel: Request) -> None:
        """The caller gave up before we answered: 487 to the INVITE (RFC 3261 §9.2)."""
        incoming = self._pending.pop(invite.key, None)
        if incoming is not None:
            incoming._cancel()

    def on_stray_response(self, response: Response) -> None:
        """A 2xx resent after the INVITE transaction ended: ACK it again."""
        call = self._call_of(DialogId.of_response(response))
        if call is not None and 200 <= response.status < 300 and response.method == "INVITE":
            self._spawn(call._acknowledge())

    def on_answer_lost(self, dialog: DialogId) -> None:
        """No ACK for our 2xx within 64*T1: end the session (RFC 3261 §13.3.1.4)."""
        call = self._calls.get(dialog)
        if call is not None:
            call._ack_lost()
            self._spawn(call._hang_up())
