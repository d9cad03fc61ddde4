"""Calls of a :class:`~callscript.agent.UserAgent`: the incoming INVITE and the established dialog.

- :class:`IncomingCall`: an INVITE waiting for the application's decision:
  ``ring()``, ``await answer(sdp)``, ``reject(486)``, ``redirect(uri)``; a
  CANCEL from the caller is answered 487 (RFC 3261 §9.2).
- :class:`Call`: one confirmed dialog (RFC 3261 §12) on either side:
  ``await bye()`` (§15.1.1), ``await request("INFO")``, and
  ``await wait_ended()`` for the peer's BYE (§15.1.2), answered 200 here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callscript.sip.address import Address
from callscript.sip.dialog import Dialog, DialogId, without_tag
from callscript.sip.errors import LocalProtocolError
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI
from callscript.sip.useragent import Local
from callscript.transaction import ServerTransaction

if TYPE_CHECKING:
    from callscript.agent import UserAgent

log = logging.getLogger("callscript.agent")

Headers = Sequence[tuple[str, object]]


class Call:
    """An established call: one dialog and the session it carries.

    Attributes:
        dialog: the dialog's state (ids, route set, remote target, CSeqs).
        invite: the INVITE that created it (ours or the caller's).
        local_body: the session description we sent.
        remote_body: the one the peer sent.
        ended_by: ``None`` while up, then ``"local"``, ``"remote"`` or ``"no ACK"``.
    """

    def __init__(
        self,
        ua: UserAgent,
        dialog: Dialog,
        *,
        invite: Request,
        local_body: bytes = b"",
        remote_body: bytes = b"",
    ) -> None:
        self.ua = ua
        self.dialog = dialog
        self.invite = invite
        self.local_body = local_body
        self.remote_body = remote_body
        self.ended_by: str | None = None
        self._ended = asyncio.Event()
        self._ack: tuple[Request, Peer] | None = None
        self._ack_waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def id(self) -> DialogId:
        """Call-ID and tags."""
        return self.dialog.id

    @property
    def remote_target(self) -> URI:
        """Where our requests in this call go (the peer's Contact)."""
        return self.dialog.remote_target

    async def bye(self) -> Response:
        """Hang up (RFC 3261 §15.1.1) and return the BYE's final response.

        Raises:
            LocalProtocolError: the call has already ended.
        """
        if self.ended_by is not None:
            raise LocalProtocolError(f"call {self.id} already ended ({self.ended_by})")
        built = await self._build("BYE")
        # RFC 3261 §15.1.1: the session ends as soon as the BYE is sent.
        self._end("local")
        return await self._exchange(*built)

    async def request(
        self,
        method: str,
        *,
        headers: Headers = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """Send ``method`` inside the call (INFO, MESSAGE, OPTIONS...) and return its final response."""
        if self.ended_by is not None:
            raise LocalProtocolError(f"call {self.id} already ended ({self.ended_by})")
        return await self._exchange(*await self._build(method, headers, body, content_type))

    async def _build(
        self, method: str, headers: Headers = (), body: bytes = b"", ctype: str | None = None
    ) -> tuple[Request, Peer, Local]:
        ua, dialog = self.ua, self.dialog
        peer = await ua.stack.route(dialog.next_hop)
        local = ua.stack.local(peer)
        request = ua.core.in_dialog(
            dialog, method, local=local, headers=headers, body=body, content_type=ctype
        )
        return request, peer, local

    async def _exchange(self, request: Request, peer: Peer, local: Local) -> Response:
        request, response = await self.ua._exchange(request, peer, local)
        dialog = self.dialog
        # A retry with credentials counted one more CSeq.
        dialog.local_seq = max(dialog.local_seq or 0, request.cseq.number)
        dialog.receive_response(request, response)
        return response

    async def wait_ended(self, timeout: float | None = None) -> str:
        """Wait until the call ends; returns who ended it (see ``ended_by``).

        Raises:
            TimeoutError: still up after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._ended.wait()
        assert self.ended_by is not None
        return self.ended_by

    # -- driven by the UserAgent ---------------------------------------------------------------

    async def _acknowledge(self) -> None:
        """Send the ACK for our INVITE's 2xx; the same ACK again for a retransmitted 2xx."""
        if self._ack is None:
            ua = self.ua
            peer = await ua.stack.route(self.dialog.next_hop)
            # RFC 3261 §13.2.2.4: the UAC core sends the ACK for a 2xx itself, in the dialog.
            self._ack = (ua.core.ack(self.dialog, self.invite, local=ua.stack.local(peer)), peer)
        self.ua.stack.send_stateless(*self._ack)

    def _receive(self, txn: ServerTransaction) -> None:
        """A request from the peer inside this call (already checked by the core)."""
        request, core = txn.request, self.ua.core
        if request.method == "BYE":
            # RFC 3261 §15.1.2: the UAS answers BYE 200 and ends the session and dialog.
            txn.send(core.respond(request, 200))
            self._end("remote")
            return
        if request.method == "INVITE":
            # A re-INVITE refreshing the session: same session description, same dialog.
            local = self.ua.stack.local(txn.source)
            response = core.respond(
                request, 200, local=local, body=self.local_body, content_type="application/sdp"
            )
            txn.send(response)
            self.ua.stack.answered(txn, response, self.id)
            return
        txn.send(core.respond(request, 200))

    def _acked(self) -> None:
        if not self._ack_waiter.done():
            self._ack_waiter.set_result(None)

    def _ack_lost(self) -> None:
        if not self._ack_waiter.done():
            self._ack_waiter.set_exception(
                TimeoutError(f"no ACK for our 2xx in {self.id} (RFC 3261 §13.3.1.4)")
            )

    async def _wait_ack(self) -> None:
        await self._ack_waiter

    async def _hang_up(self) -> None:
        if self.ended_by is not None:
            return
        try:
            await self.bye()
        except Exception:  # the peer may be gone; the call is over either way
            log.info("BYE for %s failed", self.id, exc_info=True)

    def _end(self, by: str) -> None:
        if self.ended_by is None:
            self.ended_by = by
        self.dialog.terminate()
        self.ua.core.forget(self.dialog)
        self.ua._calls.pop(self.id, None)
        self._ended.set()

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.ended_by or 'up'}>"


class IncomingCall:
    """An INVITE waiting for our answer.

    Attributes:
        request: the INVITE.
        cancelled: True once the caller cancelled it (we answered 487).
    """

    def __init__(self, ua: UserAgent, txn: ServerTransaction) -> None:
        self.ua = ua
        self.txn = txn
        self.request = txn.request
        self.cancelled = False
        # RFC 3261 §8.2.6.2: one To tag for every response of ours to this INVITE.
        self.to_tag = ua.core.ids.tag()
        self._local = ua.stack.local(txn.source)
        self._cancel_event = asyncio.Event()

    @property
    def caller(self) -> Address:
        """Who calls (the From, without tag)."""
        return without_tag(self.request.from_addr)

    @property
    def body(self) -> bytes:
        """The caller's offer."""
        return self.request.body

    def ring(self, status: int = 180, reason: str | None = None) -> None:
        """Send a provisional response (180 Ringing, 183 Session Progress)."""
        self._send(status, reason)

    async def answer(
        self,
        body: bytes = b"",
        *,
        content_type: str = "application/sdp",
        headers: Headers = (),
    ) -> Call:
        """Answer 200 and return the call once the caller's ACK arrived.

        Raises:
            LocalProtocolError: the caller cancelled, or we already answered.
            TimeoutError: no ACK within 64*T1 (the call is then hung up).
        """
        if self.txn.final is not None:
            raise LocalProtocolError("this INVITE was already answered or cancelled")
        ua = self.ua
        response = ua.core.respond(
            self.request,
            200,
            to_tag=self.to_tag,
            local=self._local,
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        dialog = ua.core.dialog_as_uas(self.request, response)
        call = Call(ua, dialog, invite=self.request, local_body=body, remote_body=self.body)
        ua._calls[dialog.id] = call
        ua._pending.pop(self.txn.key, None)
        self.txn.send(response)
        ua.stack.answered(self.txn, response, dialog.id)
        await call._wait_ack()
        return call

    def reject(
        self, status: int = 486, reason: str | None = None, *, headers: Headers = ()
    ) -> None:
        """Refuse the call with a 300-699 response."""
        if not 300 <= status <= 699:
            raise LocalProtocolError(f"reject needs a 300-699 status, not {status}")
        self.ua._pending.pop(self.txn.key, None)
        self._send(status, reason, headers)

    def redirect(self, *targets: URI | str, status: int = 302) -> None:
        """Send the caller elsewhere (RFC 3261 §8.3, §21.3): a 3xx with ``targets`` as Contact."""
        contacts = [Address(URI.parse(t) if isinstance(t, str) else t) for t in targets]
        self.reject(status, headers=[("Contact", contacts)])

    async def wait_cancelled(self) -> None:
        """Wait until the caller cancels."""
        await self._cancel_event.wait()

    def _send(self, status: int, reason: str | None, headers: Headers = ()) -> None:
        response = self.ua.core.respond(
            self.request, status, reason, to_tag=self.to_tag, local=self._local, headers=headers
        )
        self.txn.send(response)

    def _cancel(self) -> None:
        if self.txn.final is None:
            # RFC 3261 §9.2: the cancelled INVITE gets 487 (Request Terminated).
            self._send(487, None)
        self.cancelled = True
        self._cancel_event.set()

    def __repr__(self) -> str:
        return f"<IncomingCall from {self.caller} {self.request.call_id}>"


__all__ = ["Call", "IncomingCall"]
