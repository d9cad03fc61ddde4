"""The asyncio SIP stack: sockets, transactions and timers behind one object.

A :class:`Stack` owns a :class:`~callscript.transport.manager.TransportManager`
(the sockets), a :class:`~callscript.sip.transaction.TransactionLayer` (RFC 3261
§17), the UAS's 2xx retransmissions (§13.3.1.4), an RFC 3263 resolver and the
one timer they need. It pumps bytes in and out as the proxy's driver does: each
message is parsed once, requests get ``received``/``rport`` (§18.2.1), and after
every input the layer's messages go out, its events are dispatched and the timer
is re-armed at the next deadline.

Everything is per instance: two stacks in one process share nothing (ids,
transactions, dialogs, sockets).

Users of the stack are *handlers* (a :class:`~callscript.agent.UserAgent`, a
scenario endpoint), attached with :meth:`Stack.attach`. A request inside a
dialog goes to the handler that owns the dialog; any other request to the first
handler that accepts it; nobody's request gets 481 (with a To tag) or 404.
Requests we send are :class:`ClientTransaction` objects to await responses from.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

from callscript.errors import ConfigError, TransportError
from callscript.sip.answers import AnswerRetransmits
from callscript.sip.dialog import DialogId
from callscript.sip.errors import ParseError
from callscript.sip.events import (
    AckTimedOut,
    CancelSent,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from callscript.sip.ids import IdSource, RandomIds
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.receive import stamp_via
from callscript.sip.reply import make_response
from callscript.sip.timers import TimerConfig
from callscript.sip.transaction import TransactionLayer
from callscript.sip.uri import URI, ip_literal
from callscript.sip.useragent import Local
from callscript.transaction import ClientTransaction, Handler, ServerTransaction
from callscript.transport.endpoint import Listener, TransportConfig
from callscript.transport.manager import TransportManager
from callscript.transport.resolver import Resolver

log = logging.getLogger("callscript.stack")


def parse_listen(text: str) -> tuple[str, str, int]:
    """``udp:127.0.0.1:5060`` -> ``("UDP", "127.0.0.1", 5060)``; IPv6 hosts in brackets.

    Raises:
        ConfigError: not ``transport:host:port``.
    """
    transport, _, rest = text.partition(":")
    host, _, port = rest.rpartition(":")
    transport = transport.upper()
    if transport not in ("UDP", "TCP", "TLS") or not host or not port.isdigit():
        raise ConfigError(f"bad listen address {text!r} (expected e.g. udp:127.0.0.1:5060)")
    return transport, host.strip("[]"), int(port)


class Stack:
    """Sockets, transactions, 2xx retransmissions and timers of one SIP endpoint.

    Build one with :meth:`start`; close it with :meth:`close` (or ``async with``).

    Args:
        transports: the transport manager (its callbacks are taken over).
        timers: T1, T2, T4.
        ids: branches, tags, Call-IDs.
        resolver: RFC 3263 resolution of names (made on first need when ``None``).
    """

    def __init__(
        self,
        transports: TransportManager,
        *,
        timers: TimerConfig | None = None,
        ids: IdSource | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.transports = transports
        self.timers = timers or TimerConfig()
        self.ids: IdSource = ids or RandomIds()
        self.layer = TransactionLayer(timers=self.timers)
        self.answers = AnswerRetransmits(self.timers)
        self._resolver = resolver
        self._handlers: list[Handler] = []
        self._clients: dict[str, ClientTransaction] = {}
        self._servers: dict[str, ServerTransaction] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self.malformed = 0
        transports.on_message = self._on_message
        transports.on_error = self._on_transport_error

    @classmethod
    async def start(
        cls,
        listen: Sequence[str] = ("udp:127.0.0.1:0",),
        *,
        timers: TimerConfig | None = None,
        ids: IdSource | None = None,
        resolver: Resolver | None = None,
        transport_config: TransportConfig | None = None,
        advertise: str | None = None,
    ) -> Stack:
        """Open the listeners (``transport:host:port``, port 0 picks one) and return the stack.

        Args:
            advertise: the host our Via and Contact name instead of the bound one
                (needed when listening on ``0.0.0.0``).

        Raises:
            ConfigError: a malformed listen address.
            OSError: an address cannot be bound.
        """
        transports = TransportManager(transport_config)
        stack = cls(transports, timers=timers, ids=ids, resolver=resolver)
        try:
            for item in listen:
                transport, host, port = parse_listen(item)
                await transports.listen(transport, host, port, advertise=advertise)
        except BaseException:
            await stack.close()
            raise
        return stack

    async def close(self) -> None:
        """Stop the timer, end the transactions still waiting and close every socket.

        Requests still waiting get a local 503 ("stack closed"). Safe to call twice.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for txn in list(self._clients.values()):
            if txn.final is None:
                txn._put(make_response(txn.request, 503, "Service Unavailable (stack closed)"))
            txn._put(None)
        self._clients.clear()
        self._servers.clear()
        await self.transports.close()

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- handlers -------------------------------------------------------------------------

    def attach(self, handler: Handler) -> None:
        """Give ``handler`` the traffic it owns or accepts (first attached, first asked)."""
        self._handlers.append(handler)

    def detach(self, handler: Handler) -> None:
        """Stop handing traffic to ``handler``."""
        if handler in self._handlers:
            self._handlers.remove(handler)

    # -- addresses ------------------------------------------------------------------------

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """Every listener, with its real port."""
        return self.transports.listeners

    def local(self, peer: Peer) -> Local:
        """The transport and sent-by for a message to ``peer`` (our Via and Contact).

        Raises:
            TransportError: no listener for that transport and address family.
        """
        family = socket.AF_INET6 if ":" in peer.host else socket.AF_INET
        host, port = self.transports.local_address(peer.transport, family)
        return Local(peer.transport, host, port)

    async def resolve(self, uri: URI) -> list[Peer]:
        """Where to send a request for ``uri``: RFC 3263 targets, best first."""
        if self._resolver is None:
            host = uri.maddr or uri.host
            if ip_literal(host) is None:
                self._resolver = Resolver()
            else:
                transport = (uri.transport or ("tls" if uri.secure else "udp")).upper()
                port = uri.port or (5061 if transport == "TLS" else 5060)
                return [Peer(transport, host.strip("[]"), port)]
        return await self._resolver.resolve(uri)

    async def route(self, uri: URI) -> Peer:
        """The first target for ``uri``.

        Raises:
            TransportError: the name resolves to nothing.
        """
        peers = await self.resolve(uri)
        if not peers:
            raise TransportError(f"cannot resolve {uri}")
        return peers[0]

    # -- sending --------------------------------------------------------------------------

    def send_request(self, request: Request, peer: Peer) -> ClientTransaction:
        """Start a client transaction for ``request`` (with a fresh branch) towards ``peer``."""
        key = self.layer.send_request(request, peer, now=self.loop.time())
        txn = ClientTransaction(self, key, request, peer)
        self._clients[key] = txn
        self._after_input()
        return txn

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send ``message`` outside any transaction (the ACK for a 2xx)."""
        self.layer.send_stateless(message, peer)
        self._after_input()

    def send_response(self, key: str, response: Response) -> None:
        """Send ``response`` in server transaction ``key`` (a 2xx also after it ended)."""
        self.layer.send_response(key, response, now=self.loop.time())
        self._after_input()

    def answered(self, txn: ServerTransaction, response: Response, dialog: DialogId) -> None:
        """``response`` is a 2xx to INVITE just sent: resend it until its ACK (§13.3.1.4)."""
        self.answers.start(dialog, txn.key, response, now=self.loop.time())
        self._after_input()

    def cancel_request(self, key: str) -> None:
        """Cancel client INVITE transaction ``key`` as soon as RFC 3261 §9.1 allows."""
        self.layer.request_cancel(key, now=self.loop.time())
        self._after_input()

    # -- input ----------------------------------------------------------------------------

    def _on_message(self, data: bytes, source: Peer, listener: Listener | None) -> None:
        try:
            self._receive(data, source)
        except Exception:  # an adapter keeps serving whatever one message did
            log.exception("error while handling a message from %s:%s", source.host, source.port)
        self._after_input()

    def _receive(self, data: bytes, source: Peer) -> None:
        try:
            message = parse_message(data, max_size=self.transports.config.udp_max_size)
            message.top_via  # noqa: B018 - the transaction layer needs these
            message.cseq  # noqa: B018
            now = self.loop.time()
            if isinstance(message, Request):
                message.call_id  # noqa: B018
                message.from_addr  # noqa: B018
                message.to_addr  # noqa: B018
                # RFC 3261 §18.2.1: note where the request really came from.
                stamp_via(message, source)
                self.layer.handle_request(message, source, now=now)
            else:
                self.layer.handle_response(message, source, now=now)
        except ParseError as exc:
            self.malformed += 1
            log.info("malformed message from %s:%s: %s", source.host, source.port, exc)
            self.transports.answer_malformed(data, exc, source)

    def _on_transport_error(self, peer: Peer, exc: Exception) -> None:
        now = self.loop.time()
        for key, txn in list(self._clients.items()):
            if txn.peer.without_connection() == peer.without_connection():
                self.layer.handle_transport_error(key, now=now)
        self._after_input()

    def _after_input(self) -> None:
        for out in self.layer.messages_to_send():
            self.transports.send(bytes(out.message), out.peer)
        while (event := self.layer.next_event()) is not None:
            try:
                self._dispatch(event)
            except Exception:  # an adapter keeps serving whatever one handler did
                log.exception("handler failed on %r", event)
        # Handlers may have queued more (responses, ACKs).
        for out in self.layer.messages_to_send():
            self.transports.send(bytes(out.message), out.peer)
        deadlines = [d for d in (self.layer.next_deadline(), self.answers.next_deadline()) if d]
        self._rearm(min(deadlines) if deadlines else None)

    def _rearm(self, deadline: float | None) -> None:
        if deadline == self._deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        now = self.loop.time()
        self.layer.handle_timers(now=now)
        resend, lost = self.answers.handle_timers(now=now)
        for item in resend:
            self.layer.send_response(item.key, item.response, now=now)
        for dialog in lost:
            owner = self._owner(dialog)
            if owner is not None:
                owner.on_answer_lost(dialog)
        self._after_input()

    # -- dispatch -------------------------------------------------------------------------

    def _owner(self, dialog: DialogId) -> Handler | None:
        return next((h for h in self._handlers if h.owns(dialog)), None)

    def _dispatch(self, event: TransactionEvent) -> None:
        match event:
            case ResponseReceived(key=key, response=response):
                txn = self._clients.get(key) if key is not None else None
                if txn is not None:
                    txn._put(response)
                    return
                dialog = DialogId.of_response(response)
                owner = self._owner(dialog) if dialog is not None else None
                if owner is not None:
                    owner.on_stray_response(response)
            case TransactionTimedOut(key=key) | TransportFailed(key=key) if key in self._clients:
                txn = self._clients[key]
                timed_out = isinstance(event, TransactionTimedOut)
                # RFC 3261 §8.1.3.1: a timeout counts as 408, a transport error as 503.
                status, why = (408, "no response") if timed_out else (503, "transport error")
                reason = f"{'Request Timeout' if timed_out else 'Service Unavailable'} ({why})"
                txn._put(make_response(txn.request, status, reason))
            case TransactionTerminated(key=key):
                client = self._clients.pop(key, None)
                if client is not None:
                    client._put(None)
                self._servers.pop(key, None)
            case RequestReceived(key=None, request=request):
                self._receive_ack(request)
            case RequestReceived(key=str(key), request=request, source=source):
                self._receive_request(ServerTransaction(self, key, request, source))
            case TransportFailed() | AckTimedOut() | CancelSent():
                pass

    def _receive_ack(self, ack: Request) -> None:
        if ack.method != "ACK":
            return
        self.answers.acknowledged(ack)
        dialog = DialogId.of_request(ack)
        owner = self._owner(dialog) if dialog is not None else None
        if owner is not None:
            owner.on_ack(ack)

    def _receive_request(self, txn: ServerTransaction) -> None:
        request = txn.request
        self._servers[txn.key] = txn
        if request.method == "CANCEL":
            self._receive_cancel(txn)
            return
        dialog = DialogId.of_request(request)
        if dialog is not None:
            owner = self._owner(dialog)
        else:
            owner = next((h for h in self._handlers if h.accepts(request)), None)
        if owner is None:
            # RFC 3261 §12.2.2: a request for a dialog we do not have gets 481.
            txn.respond(481 if dialog is not None else 404)
            return
        txn.handler = owner
        owner.on_request(txn)

    def _receive_cancel(self, cancel: ServerTransaction) -> None:
        key = self.layer.find_invite(cancel.request)
        invite = self._servers.get(key) if key is not None else None
        if invite is None:
            # RFC 3261 §9.2: a CANCEL matching no transaction gets 481.
            cancel.respond(481)
            return
        # RFC 3261 §9.2: the CANCEL itself gets 200; the INVITE's fate is its owner's.
        cancel.respond(200)
        if invite.final is None and invite.handler is not None:
            invite.cancelled = True
            invite.handler.on_cancel(invite, cancel.request)
