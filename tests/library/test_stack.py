"""The asyncio stack and user agents over real sockets on 127.0.0.1: calls, rejections, CANCEL, 2xx resends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from callscript.agent import UserAgent
from callscript.call import Call, IncomingCall
from callscript.sip.dialog import DialogId
from callscript.sip.message import Request, Response, parse_message
from callscript.sip.reply import make_response
from callscript.sip.timers import TimerConfig
from callscript.stack import Stack
from callscript.transaction import RequestFailed, ServerTransaction

pytestmark = pytest.mark.timeout(60)

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
FAST = TimerConfig(t1=0.02, t2=0.16)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())  # type: ignore[arg-type]


def uri_of(stack: Stack, user: str) -> str:
    host, port = stack.listeners[0].sent_by
    return f"sip:{user}@{host}:{port}"


def test_call_answered_and_hung_up_by_the_caller() -> None:
    """RFC 3261 §15.1.2: the callee answers BYE with 200 and the call ends on both sides."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")
            rings: list[int] = []

            async def callee() -> Call:
                incoming = await bob.incoming()
                assert incoming.body == SDP
                assert str(incoming.caller.uri) == "sip:alice@example.com"
                incoming.ring()
                return await incoming.answer(SDP)

            answering = asyncio.ensure_future(callee())
            call = await alice.invite(
                uri_of(b, "bob"), body=SDP, on_provisional=lambda r: rings.append(r.status)
            )
            answered = await answering
            assert 180 in rings
            assert call.remote_body == SDP and answered.remote_body == SDP
            assert call.id.call_id == answered.id.call_id
            assert call.id.local_tag == answered.id.remote_tag
            info = await call.request("INFO", body=b"x", content_type="text/plain")
            assert info.status == 200
            bye = await call.bye()
            assert bye.status == 200 and call.ended_by == "local"
            assert await answered.wait_ended(5) == "remote"
            assert not alice.core.dialogs and not bob.core.dialogs

    run(main)


def test_callee_hangs_up_and_the_caller_sees_it() -> None:
    """RFC 3261 §15.1.1: the callee's BYE goes to the caller's Contact and ends the call there."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")

            async def answer(incoming: IncomingCall) -> None:
                call = await incoming.answer(SDP)
                await call.bye()

            bob.on_invite = answer
            call = await alice.invite(uri_of(b, "bob"), body=SDP)
            assert await call.wait_ended(5) == "remote"
            with pytest.raises(Exception, match="already ended"):
                await call.bye()

    run(main)


@pytest.mark.parametrize(("status", "reason"), [(486, "Busy Here"), (603, "Decline")])
def test_rejected_call_raises_with_the_response(status: int, reason: str) -> None:
    """A rejected INVITE raises RequestFailed carrying the final response."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")

            async def reject(incoming: IncomingCall) -> None:
                incoming.reject(status)

            bob.on_invite = reject
            with pytest.raises(RequestFailed) as failure:
                await alice.invite(uri_of(b, "bob"), body=SDP)
            assert (failure.value.status, failure.value.response.reason) == (status, reason)
            assert not alice.core.dialogs

    run(main)


def test_redirect_lists_the_new_targets() -> None:
    """A 3xx redirect reaches the caller with the Contacts to try."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")

            async def redirect(incoming: IncomingCall) -> None:
                incoming.redirect("sip:bob@192.0.2.44", "sip:bob@192.0.2.45")

            bob.on_invite = redirect
            with pytest.raises(RequestFailed) as failure:
                await alice.invite(uri_of(b, "bob"))
            assert failure.value.status == 302
            contacts = [str(c.uri) for c in failure.value.response.contacts]
            assert contacts == ["sip:bob@192.0.2.44", "sip:bob@192.0.2.45"]

    run(main)


def test_unanswered_call_is_cancelled_after_the_timeout() -> None:
    """RFC 3261 §9.2: the CANCEL gets 200 and the INVITE 487; the callee learns it was cancelled."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")
            seen: list[IncomingCall] = []

            async def ring(incoming: IncomingCall) -> None:
                seen.append(incoming)
                incoming.ring()
                await incoming.wait_cancelled()

            bob.on_invite = ring
            with pytest.raises(RequestFailed) as failure:
                await alice.invite(uri_of(b, "bob"), timeout=0.3)
            assert failure.value.status == 487
            assert "no answer in time" in str(failure.value)
            assert seen and seen[0].cancelled
            with pytest.raises(Exception, match="already answered"):
                await seen[0].answer(SDP)

    run(main)


def test_options_and_message_are_answered() -> None:
    """RFC 3261 §8.2.1: OPTIONS gets 200 with Allow; MESSAGE reaches the application."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")
            texts: list[bytes] = []
            bob.on_message = lambda request: texts.append(request.body)
            options = await alice.options(uri_of(b, "bob"))
            assert "MESSAGE" in [str(v) for v in options.get_all("Allow")]
            await alice.message(uri_of(b, "bob"), "hello")
            assert texts == [b"hello"]
            # Nobody called carol on stack b: 404, raised by the convenience methods.
            with pytest.raises(RequestFailed) as failure:
                await alice.options(uri_of(b, "carol"))
            assert failure.value.status == 404
            # A method nobody implements: 405, returned as it is by request().
            response = await alice.request("SUBSCRIBE", uri_of(b, "bob"))
            assert response.status == 405

    run(main)


def test_two_stacks_in_one_process_do_not_see_each_other() -> None:
    """Each stack has its own sockets, ids, transactions and dialogs: no global state."""

    async def main() -> None:
        async with (
            await Stack.start() as caller,
            await Stack.start() as a,
            await Stack.start() as b,
        ):
            assert a.ids is not b.ids and a.layer is not b.layer
            on_a = UserAgent(a, "sip:bob@example.com")
            on_b = UserAgent(b, "sip:bob@example.com")
            carol = UserAgent(caller, "sip:carol@example.com")

            async def answer(incoming: IncomingCall) -> None:
                await incoming.answer(SDP)

            on_b.on_invite = answer
            call = await carol.invite(uri_of(b, "bob"), body=SDP)
            assert on_a._incoming.empty() and not on_a.core.dialogs
            assert list(on_b.core.dialogs) == [
                DialogId(call.id.call_id, call.id.remote_tag, call.id.local_tag)
            ]
            # Closing one stack leaves the other serving.
            await a.close()
            await call.bye()
            second = await carol.invite(uri_of(b, "bob"), body=SDP)
            assert (await second.bye()).status == 200
            assert len(a.layer) == 0

    run(main)


def test_unknown_dialog_gets_481_and_bye_outside_a_dialog_too() -> None:
    """RFC 3261 §12.2.2: a request inside a dialog nobody has gets 481."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            alice = UserAgent(a, "sip:alice@example.com")
            UserAgent(b, "sip:bob@example.com")
            # Without a To tag the BYE is outside any dialog: bob's UA has none to end.
            assert (await alice.request("BYE", uri_of(b, "bob"))).status == 481
            peer = RawPeer()
            peer.send(
                b.listeners[0].port,
                "BYE",
                to_tag="nobody",
                headers=f"Contact: <sip:raw@127.0.0.1:{peer.port}>\r\n",
            )
            response = await peer.receive()
            assert isinstance(response, Response) and response.status == 481
            peer.sock.close()

    run(main)


class Registrar:
    """A registrar made of a Stack handler: records each REGISTER and answers 200."""

    def __init__(self, stack: Stack) -> None:
        self.requests: list[Request] = []
        stack.attach(self)

    def owns(self, dialog: DialogId) -> bool:
        return False

    def accepts(self, request: Request) -> bool:
        return request.method == "REGISTER"

    def on_request(self, txn: ServerTransaction) -> None:
        self.requests.append(txn.request)
        txn.respond(200, headers=[("Contact", txn.request.contacts)])

    def on_ack(self, ack: Request) -> None:
        pass

    def on_cancel(self, invite: ServerTransaction, cancel: Request) -> None:
        pass

    def on_stray_response(self, response: Response) -> None:
        pass

    def on_answer_lost(self, dialog: DialogId) -> None:
        pass


def test_registrations_share_a_call_id_and_count_cseq_up() -> None:
    """RFC 3261 §10.2: To and From are the address-of-record; one Call-ID, CSeq going up."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as registrar_stack:
            registrar = Registrar(registrar_stack)
            host, port = registrar_stack.listeners[0].sent_by
            alice = UserAgent(a, "sip:alice@example.com", proxy=f"sip:{host}:{port}")
            await alice.register(expires=600)
            await alice.register(expires=600)
            await alice.unregister()
            first, second, last = registrar.requests
            assert str(first.uri) == "sip:example.com"
            assert first.to_addr.uri == first.from_addr.uri == alice.aor.uri
            assert first.call_id == second.call_id == last.call_id
            assert [r.cseq.number for r in registrar.requests] == [1, 2, 3]
            assert [str(r["Expires"]) for r in registrar.requests] == ["600", "600", "0"]
            assert last.contacts[0].params.get("expires") == "0"
            assert [str(r.uri) for r in first["Route"]] == [f"sip:{host}:{port};lr"]

    run(main)


def test_no_response_is_a_408_and_a_transport_failure_a_503() -> None:
    """RFC 3261 §8.1.3.1: a transaction timeout is treated as 408, a transport error as 503."""

    async def main() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        try:
            listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
            async with await Stack.start(listen, timers=FAST) as a:
                alice = UserAgent(a, "sip:alice@example.com")
                with pytest.raises(RequestFailed) as timeout:
                    await alice.options(f"sip:x@127.0.0.1:{silent.getsockname()[1]}")
                assert timeout.value.status == 408
                assert timeout.value.response.reason == "Request Timeout (no response)"
                target = f"sip:x@127.0.0.1:{closed.getsockname()[1]};transport=tcp"
                with pytest.raises(RequestFailed) as refused:
                    await alice.options(target)
                assert refused.value.status == 503
                assert "transport error" in refused.value.response.reason
        finally:
            silent.close()
            closed.close()

    run(main)


class RawPeer:
    """A UDP socket we drive by hand (it never ACKs)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def receive(self) -> Request | Response:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10):
            data = await loop.sock_recv(self.sock, 65535)
        return parse_message(data)

    def send(self, port: int, method: str, *, to_tag: str | None = None, headers: str = "") -> None:
        to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
        text = (
            f"{method} sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-raw{method}\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:raw@example.com>;tag=r1\r\n"
            f"To: {to}\r\n"
            "Call-ID: raw-call\r\n"
            f"CSeq: 1 {method}\r\n"
            f"{headers}"
            "Content-Length: 0\r\n\r\n"
        )
        self.sock.sendto(text.encode(), ("127.0.0.1", port))


def test_2xx_resent_until_given_up_then_the_callee_hangs_up() -> None:
    """RFC 3261 §13.3.1.4: without an ACK the 2xx is resent for 64*T1, then the session ends with BYE."""

    async def main() -> None:
        async with await Stack.start(timers=FAST) as b:
            bob = UserAgent(b, "sip:bob@example.com")
            answered: list[BaseException] = []

            async def answer(incoming: IncomingCall) -> None:
                try:
                    await incoming.answer(SDP)
                except TimeoutError as exc:
                    answered.append(exc)

            bob.on_invite = answer
            peer = RawPeer()
            peer.send(
                b.listeners[0].port,
                "INVITE",
                headers=f"Contact: <sip:raw@127.0.0.1:{peer.port}>\r\n",
            )
            statuses: list[int] = []
            while True:
                message = await peer.receive()
                if isinstance(message, Request):
                    break
                statuses.append(message.status)
            assert message.method == "BYE"
            assert str(message.uri) == f"sip:raw@127.0.0.1:{peer.port}"
            assert statuses[0] == 100
            assert statuses.count(200) > 2
            assert answered and "no ACK" in str(answered[0])
            peer.sock.close()

    run(main)


def test_closing_the_stack_ends_the_requests_still_waiting() -> None:
    """A request in flight when its stack closes fails with a local 503 instead of hanging."""

    async def main() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        try:
            stack = await Stack.start()
            alice = UserAgent(stack, "sip:alice@example.com")
            waiting = asyncio.ensure_future(
                alice.options(f"sip:x@127.0.0.1:{silent.getsockname()[1]}")
            )
            await asyncio.sleep(0.05)
            await stack.close()
            with pytest.raises(RequestFailed) as failure:
                await waiting
            assert failure.value.status == 503
            assert failure.value.response.reason == "Service Unavailable (stack closed)"
            await stack.close()
        finally:
            silent.close()

    run(main)


def test_garbage_is_answered_or_dropped_and_the_stack_keeps_serving() -> None:
    """Bytes that are not SIP never stop the stack: a broken request gets 400, then calls work."""

    async def main() -> None:
        async with await Stack.start() as a, await Stack.start() as b:
            UserAgent(b, "sip:bob@example.com")
            peer = RawPeer()
            port = b.listeners[0].port
            peer.sock.sendto(b"\x00\xffnot sip at all\r\n\r\n", ("127.0.0.1", port))
            peer.sock.sendto(
                f"OPTIONS sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-bad\r\n"
                "From: <sip:raw@example.com>;tag=r\r\nTo: <sip:bob@example.com>\r\n"
                "Call-ID: bad\r\nCSeq: x OPTIONS\r\nContent-Length: 0\r\n\r\n".encode(),
                ("127.0.0.1", port),
            )
            response = await peer.receive()
            assert isinstance(response, Response) and response.status == 400
            assert b.malformed == 2
            alice = UserAgent(a, "sip:alice@example.com")
            assert (await alice.options(uri_of(b, "bob"))).status == 200
            peer.sock.close()

    run(main)


def test_forked_2xx_are_all_acked_and_the_extra_one_ended() -> None:
    """RFC 3261 §13.2.2.4: every 2xx is ACKed, a resent one again; a second fork's is ended with BYE."""

    async def main() -> None:
        async with await Stack.start(timers=FAST) as a:
            alice = UserAgent(a, "sip:alice@example.com")
            peer = RawPeer()
            calling = asyncio.ensure_future(alice.invite(f"sip:bob@127.0.0.1:{peer.port}"))
            invite = await peer.receive()
            assert isinstance(invite, Request)
            back = ("127.0.0.1", a.listeners[0].port)

            def answer(tag: str) -> bytes:
                ok = make_response(invite, 200, to_tag=tag)
                ok["Contact"] = f"<sip:{tag}@127.0.0.1:{peer.port}>"
                return bytes(ok)

            peer.sock.sendto(answer("first"), back)
            call = await calling
            assert call.id.remote_tag == "first"
            peer.sock.sendto(answer("first"), back)  # resent: ACKed again
            peer.sock.sendto(answer("second"), back)  # another fork
            seen: list[tuple[str, str | None]] = []
            while ("BYE", "second") not in seen or seen.count(("ACK", "first")) < 2:
                message = await peer.receive()
                assert isinstance(message, Request)
                seen.append((message.method, message.to_addr.tag))
                if message.method == "BYE":
                    peer.sock.sendto(bytes(make_response(message, 200)), back)
            assert ("ACK", "second") in seen
            assert seen.index(("ACK", "second")) < seen.index(("BYE", "second"))
            assert ("BYE", "first") not in seen
            assert call.ended_by is None
            peer.sock.close()

    run(main)


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_call_over_each_transport_and_address_family(host: str, transport: str) -> None:
    """Calls work over UDP and TCP, IPv4 and IPv6; the Contact names the transport used."""
    if host == "[::1]" and not ipv6_available():
        pytest.skip("no IPv6 loopback on this host")

    async def main() -> None:
        listen = [f"{transport}:{host}:0"]
        async with await Stack.start(listen) as a, await Stack.start(listen) as b:
            alice = UserAgent(a, "sip:alice@example.com")
            bob = UserAgent(b, "sip:bob@example.com")

            async def answer(incoming: IncomingCall) -> None:
                await incoming.answer(SDP)

            bob.on_invite = answer
            port = b.listeners[0].port
            call = await alice.invite(f"sip:bob@{host}:{port};transport={transport}", body=SDP)
            expected = f"sip:bob@{host}:{port}" + (";transport=tcp" if transport == "tcp" else "")
            assert str(call.remote_target) == expected
            assert (await call.bye()).status == 200

    run(main)
