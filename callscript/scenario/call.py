"""One call of a scenario: numbered steps that send, expect and pause, as sipp's do.

A :class:`ScenarioCall` is one Call-ID. Each method is a step, numbered from 1
in the order the scenario runs them; a step that fails raises
:class:`ScenarioFailed` naming the step and what arrived instead::

    step 4 expected 180/183/200, got 486 Busy Here

Sending: :meth:`~ScenarioCall.invite`, :meth:`~ScenarioCall.request`
(OPTIONS, MESSAGE, INFO... inside the dialog once there is one),
:meth:`~ScenarioCall.register`, :meth:`~ScenarioCall.ack`,
:meth:`~ScenarioCall.bye`, :meth:`~ScenarioCall.cancel`,
:meth:`~ScenarioCall.respond` (to the last request received),
:meth:`~ScenarioCall.redirect`. Receiving: :meth:`~ScenarioCall.expect` with
status codes or methods, ``optional=True`` to let the step be skipped when
something else comes (the message then goes to the next step), ``timeout=``.
Waiting: :meth:`~ScenarioCall.pause`.

What the scenario never sees (the stack and this class handle it): response
retransmissions, the ACK of a non-2xx final (the transaction sends and absorbs
it), our 2xx resent until its ACK, the ACK resent for a resent 2xx, and a 401
or 407 the scenario did not ask for when it has credentials: the request is
resent with them (RFC 3261 §22.2) within the same step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callscript.scenario.inbox import Arrival, Inbox, Lost, ScenarioFailed
from callscript.sip.address import Address
from callscript.sip.dialog import Dialog, DialogId
from callscript.sip.events import Peer
from callscript.sip.message import Request, Response
from callscript.sip.uri import URI
from callscript.sip.useragent import Local
from callscript.transaction import ClientTransaction, ServerTransaction

if TYPE_CHECKING:
    from callscript.scenario.endpoint import Endpoint

Headers = Sequence[tuple[str, object]]


class ScenarioCall:
    """One call of a scenario; see the module docstring.

    Attributes:
        number: which call of the run this is (from 1).
        target: the URI the scenario calls (``--target``), ``None`` for a UAS.
        step: the number of the last step begun.
        dialog: the dialog once a 2xx created it.
        last: the last message a step took.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        number: int,
        call_id: str,
        target: URI | None = None,
        timeout: float = 32.0,
    ) -> None:
        self.endpoint = endpoint
        self.number = number
        self.call_id = call_id
        self.target = target
        self.timeout = timeout
        self.step = 0
        self.dialog: Dialog | None = None
        self.last: Request | Response | None = None
        self.started_at = endpoint.stack.loop.time()
        self.response_time: float | None = None
        self._inbox = Inbox(endpoint.stack.loop)
        self._from_tag = endpoint.core.ids.tag()
        self._to_tag = endpoint.core.ids.tag()
        self._cseq = 0
        self._invite: Request | None = None
        self._invite_txn: ClientTransaction | None = None
        self._ack: tuple[Request, Peer] | None = None
        self._answered: Response | None = None
        self._request: ServerTransaction | None = None
        self._sent: dict[str, tuple[Request, Peer, Local]] = {}
        self._acks_seen: set[int] = set()

    # -- steps: sending ----------------------------------------------------------------------

    async def invite(
        self,
        uri: URI | str | None = None,
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
        headers: Headers = (),
    ) -> Request:
        """Send an INVITE (to ``uri``, default the target)."""
        self._begin()
        request = await self._send(
            "INVITE", uri, headers=headers, body=body, content_type=content_type if body else None
        )
        self._invite = request
        return request

    async def request(
        self,
        method: str,
        uri: URI | str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Headers = (),
    ) -> Request:
        """Send ``method``: inside the dialog when there is one, else to ``uri`` or the target."""
        self._begin()
        return await self._send(method, uri, headers=headers, body=body, content_type=content_type)

    async def message(self, text: str, uri: URI | str | None = None) -> Request:
        """Send a MESSAGE with ``text`` (RFC 3428)."""
        return await self.request("MESSAGE", uri, body=text.encode(), content_type="text/plain")

    async def register(self, registrar: URI | str | None = None, *, expires: int = 3600) -> Request:
        """Send a REGISTER binding our Contact to our address-of-record (RFC 3261 §10.2)."""
        self._begin()
        aor = self.endpoint.core.aor.uri
        target = _uri(registrar) or URI(aor.scheme, host=aor.host, port=aor.port)
        return await self._send(
            "REGISTER",
            target,
            to=self.endpoint.core.aor,
            contact_expires=expires,
            headers=[("Expires", expires)],
        )

    async def bye(self) -> Request:
        """Send BYE in the dialog."""
        return await self.request("BYE")

    async def ack(self) -> None:
        """Acknowledge the INVITE's final response.

        A 2xx is acknowledged here (RFC 3261 §13.2.2.4); the ACK for a failure
        response was already sent by the transaction (§17.1.1.3), so the step
        only checks that a final response came.
        """
        self._begin()
        if self._invite_txn is None or self._invite_txn.final is None:
            raise ScenarioFailed(self.step, "cannot ACK: no final response to an INVITE yet")
        final = self._invite_txn.final
        if 200 <= final.status < 300:
            await self._send_ack(final)

    async def cancel(self) -> None:
        """Cancel the INVITE (sent once a provisional came, RFC 3261 §9.1)."""
        self._begin()
        if self._invite_txn is None:
            raise ScenarioFailed(self.step, "cannot CANCEL: no INVITE sent")
        self._invite_txn.cancel()

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Headers = (),
    ) -> Response:
        """Answer the last request received (a 2xx to INVITE creates the dialog and is resent until ACK)."""
        self._begin()
        txn = self._request
        if txn is None:
            raise ScenarioFailed(self.step, f"cannot answer {status}: no request received")
        request = txn.request
        core, stack = self.endpoint.core, self.endpoint.stack
        local = stack.local(txn.source)
        if content_type is None and body and request.method == "INVITE":
            content_type = "application/sdp"
        response = core.respond(
            request,
            status,
            reason,
            to_tag=self._to_tag,
            local=local,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        txn.send(response)
        if request.method == "INVITE" and 200 <= status < 300:
            if self.dialog is None:
                self.dialog = core.dialog_as_uas(request, response)
            self._answered = response
            stack.answered(txn, response, self.dialog.id)
        return response

    def redirect(self, *targets: URI | str, status: int = 302) -> Response:
        """Answer the last request with a 3xx listing ``targets`` as Contact."""
        contacts = [Address(_uri(t) or URI.parse(str(t))) for t in targets]
        return self.respond(status, headers=[("Contact", contacts)])

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``."""
        self._begin()
        await asyncio.sleep(seconds)

    # -- steps: receiving ---------------------------------------------------------------------

    async def expect(
        self, *what: int | str, optional: bool = False, timeout: float | None = None
    ) -> Request | Response | None:
        """Take the next message: a response with one of the status codes, or a request
        with one of the methods, in ``what``.

        Returns:
            The message; ``None`` when an optional step was skipped.

        Raises:
            ScenarioFailed: something else arrived, or nothing within ``timeout``
                (default: the run's timeout); a skipped optional step only
                raises when nothing at all arrived.
        """
        self._begin()
        limit = self.timeout if timeout is None else timeout
        wanted = {w.upper() if isinstance(w, str) else w for w in what}
        inbox = self._inbox
        deadline = self.endpoint.stack.loop.time() + limit
        while True:
            item = await inbox.next(deadline)
            if item is None:
                if optional:
                    return None
                raise inbox.failure(self.step, what, item, limit)
            if isinstance(item, Arrival) and item.wanted(wanted):
                inbox.skipped.clear()
                self._take(item)
                return item.message
            if isinstance(item, Arrival) and await self._absorbed(item):
                continue
            inbox.hold(item)
            if optional:
                inbox.skipped += [str(w) for w in what]
                return None
            raise inbox.failure(self.step, what, item, limit)

    def _take(self, item: Arrival) -> None:
        message = item.message
        self.last = message
        if isinstance(message, Request):
            if message.method != "ACK":
                self._request = item.txn
            if self.dialog is not None and DialogId.of_request(message) == self.dialog.id:
                # RFC 3261 §12.2.2: requests inside the dialog move its CSeq and target.
                self.dialog.receive_request(message)
            return
        if message.status >= 200 and self.response_time is None:
            self.response_time = self.endpoint.stack.loop.time() - self.started_at
        if message.method == "INVITE" and 200 <= message.status < 300 and self._invite:
            self.dialog = self.endpoint.core.dialog_as_uac(self._invite, message)

    async def _absorbed(self, item: Arrival) -> bool:
        """Handle what the scenario did not ask for and should not see: True when done."""
        message = item.message
        if isinstance(message, Request):
            return False
        if message.status in (401, 407) and self.endpoint.core.credentials is not None:
            return await self._authenticate(message)
        return False

    async def _authenticate(self, response: Response) -> bool:
        sent = self._sent.get(response.cseq.method)
        if sent is None or sent[0].cseq.number != response.cseq.number:
            return False
        request, peer, local = sent
        # RFC 3261 §22.2: resend with credentials, a new transaction with the next CSeq.
        retry = self.endpoint.core.authorize(request, response, local=local)
        if retry is None:
            return False
        self._cseq = max(self._cseq, retry.cseq.number)
        if self.dialog is not None:
            self.dialog.local_seq = max(self.dialog.local_seq or 0, retry.cseq.number)
        self._start(retry, peer, local)
        return True

    # -- plumbing --------------------------------------------------------------------------------

    def _begin(self) -> None:
        self.step += 1

    async def _send(
        self,
        method: str,
        uri: URI | str | None,
        *,
        headers: Headers = (),
        body: bytes = b"",
        content_type: str | None = None,
        to: Address | None = None,
        contact_expires: int | None = None,
    ) -> Request:
        endpoint = self.endpoint
        core, stack = endpoint.core, endpoint.stack
        dialog = self.dialog
        if dialog is not None and uri is None and method != "REGISTER":
            peer = await stack.route(dialog.next_hop)
            local = stack.local(peer)
            request = core.in_dialog(
                dialog, method, local=local, headers=headers, body=body, content_type=content_type
            )
        else:
            target = _uri(uri) or self.target
            if target is None:
                raise ScenarioFailed(self.step, f"cannot send {method}: no target URI")
            route = [Address(endpoint.proxy)] if endpoint.proxy is not None else []
            peer = await stack.route(endpoint.proxy or target)
            local = stack.local(peer)
            self._cseq += 1
            contact = None
            if contact_expires is not None:
                contact = core.contact(local).with_params(expires=str(contact_expires))
            request = core.new_request(
                method,
                target,
                local=local,
                to=to,
                route=route,
                call_id=self.call_id,
                cseq=self._cseq,
                from_tag=self._from_tag,
                contact=contact,
                headers=headers,
                body=body,
                content_type=content_type,
            )
        self._start(request, peer, local)
        return request

    def _start(self, request: Request, peer: Peer, local: Local) -> None:
        txn = self.endpoint.stack.send_request(request, peer)
        self._sent[request.method] = (request, peer, local)
        if request.method == "INVITE":
            self._invite, self._invite_txn = request, txn
        task = asyncio.ensure_future(self._pump(txn))
        self.endpoint.keep(task)

    async def _pump(self, txn: ClientTransaction) -> None:
        """Move a transaction's responses to the inbox; a 2xx we already ACKed gets the ACK again."""
        seen_2xx: set[str] = set()
        while (response := await txn.response()) is not None:
            if txn.request.method == "INVITE" and 200 <= response.status < 300:
                tag = response.to_addr.tag or ""
                if tag in seen_2xx:
                    self.resent_2xx(response)
                    continue
                seen_2xx.add(tag)
            self._inbox.put(Arrival(response))

    async def _send_ack(self, final: Response) -> None:
        invite = self._invite
        assert invite is not None  # a final response to an INVITE came, so one was sent
        core, stack = self.endpoint.core, self.endpoint.stack
        if self.dialog is None:
            self.dialog = core.dialog_as_uac(invite, final)
        peer = await stack.route(self.dialog.next_hop)
        # RFC 3261 §13.2.2.4: the UAC core ACKs each 2xx itself, inside the dialog.
        ack = core.ack(self.dialog, invite, local=stack.local(peer))
        self._ack = (ack, peer)
        stack.send_stateless(ack, peer)

    # -- from the endpoint ----------------------------------------------------------------------

    def deliver(self, txn: ServerTransaction) -> None:
        """A new request for this call."""
        self._inbox.put(Arrival(txn.request, txn))

    def deliver_ack(self, ack: Request) -> None:
        """An ACK for one of our 2xx; each CSeq once (a resent 2xx may draw a resent ACK)."""
        if ack.cseq.number in self._acks_seen:
            return
        self._acks_seen.add(ack.cseq.number)
        self._inbox.put(Arrival(ack))

    def resent_2xx(self, response: Response) -> None:
        """A 2xx we already saw came again: send the same ACK again, if we sent one."""
        dialog = self.dialog
        if self._ack is None or dialog is None:
            return
        if DialogId.of_response(response) == dialog.id:
            # RFC 3261 §13.2.2.4: each retransmission of the 2xx gets the ACK again.
            self.endpoint.stack.send_stateless(*self._ack)

    def cancelled(self, invite: ServerTransaction, cancel: Request) -> None:
        """The caller cancelled: 487 to the INVITE unless answered (RFC 3261 §9.2).

        The CANCEL itself (already answered 200 by the stack) goes to the scenario.
        """
        if invite.final is None:
            response = self.endpoint.core.respond(invite.request, 487, to_tag=self._to_tag)
            invite.send(response)
        self._inbox.put(Arrival(cancel))

    def answer_lost(self, dialog: DialogId) -> None:
        """Our 2xx got no ACK: the next expect fails with that."""
        self._inbox.put(Lost(dialog))


def _uri(value: URI | str | None) -> URI | None:
    if value is None:
        return None
    return URI.parse(value) if isinstance(value, str) else value
