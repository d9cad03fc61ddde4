"""Scenarios against scenarios, in one process over loopback sockets: each step's outcome."""

from __future__ import annotations

import asyncio
import socket

import pytest

from callscript.scenario import Endpoint, Runner, Scenario, ScenarioCall
from callscript.sip.message import Request, parse_message
from callscript.sip.reply import make_response
from callscript.sip.uri import URI
from callscript.sip.useragent import UserAgentCore
from callscript.stack import Stack
from tests.scenario.conftest import run_pair

pytestmark = pytest.mark.timeout(60)


def test_basic_call_passes_on_both_sides() -> None:
    """A UAC call (INVITE, 180, 200, ACK, BYE) against an answering UAS: every step passes."""
    uac, uas, calling, _answering = asyncio.run(run_pair("uac_call", "uas_answer", calls=3))
    assert (uac.calls, uac.successful, uac.failed) == (3, 3, 0)
    assert (uas.calls, uas.successful, uas.failed) == (3, 3, 0)
    assert all(r.response_time is not None for r in calling.records)
    assert len({r.call_id for r in calling.records}) == 3


def test_busy_callee_fails_the_step_that_wanted_the_answer() -> None:
    """A failure names the step and what arrived: the optional steps it skipped are listed too."""
    uac, uas, calling, _ = asyncio.run(run_pair("uac_call", "uas_busy"))
    assert uac.failed == 1 and uas.successful == 1
    assert calling.records[0].error == "step 4 expected 100/180/183/200, got 486 Busy Here"
    assert uac.failures == {"step 4 expected 100/180/183/200, got 486 Busy Here": 1}


def test_no_answer_fails_after_the_steps_timeout() -> None:
    """A step waiting past its timeout fails saying nothing came."""
    _uac, _, calling, _ = asyncio.run(run_pair("uac_impatient", "uas_noanswer", timeout=2.0))
    assert calling.records[0].error == "step 3 expected 200, got nothing within 0.5 s"


def test_cancel_ends_the_invite_with_487() -> None:
    """RFC 3261 §9.2: the callee's INVITE is answered 487 once the CANCEL came."""
    _uac, _uas, calling, answering = asyncio.run(run_pair("uac_cancel", "uas_noanswer"))
    assert calling.records[0].error is None, calling.records[0].error
    assert answering.records[0].error is None, answering.records[0].error


def test_redirect_reaches_the_caller() -> None:
    """A UAS scenario redirects; the UAC scenario expects the 302 and its Contact."""
    _uac, uas, calling, _answering = asyncio.run(run_pair("uac_redirected", "uas_redirect"))
    assert calling.records[0].error is None, calling.records[0].error
    assert uas.successful == 1


def test_message_and_options_of_one_call() -> None:
    """MESSAGE and OPTIONS with one Call-ID reach the same UAS call, in order."""
    _uac, _uas, calling, answering = asyncio.run(run_pair("uac_messages", "uas_messages"))
    assert calling.records[0].error is None, calling.records[0].error
    assert answering.records[0].error is None, answering.records[0].error


def test_unexpected_request_fails_the_uas_step() -> None:
    """A UAS expecting an INVITE that gets a MESSAGE names both."""
    _uac, _uas, _, answering = asyncio.run(run_pair("uac_messages", "uas_answer", timeout=1.0))
    assert answering.records[0].error == "step 1 expected INVITE, got MESSAGE request"


def test_resent_2xx_gets_the_ack_again_without_a_step() -> None:
    """RFC 3261 §13.2.2.4: a 2xx the scenario already ACKed is ACKed again, unseen by the steps."""

    async def uac(call: ScenarioCall) -> None:
        await call.invite()
        await call.expect(200)
        await call.ack()
        await call.pause(0.5)

    async def main() -> tuple[list[str], Runner]:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        async with await Stack.start() as stack:
            run = Runner(
                Endpoint(stack, UserAgentCore("sip:alice@example.com", ids=stack.ids)),
                Scenario.uac(uac),
                target=URI.parse(f"sip:bob@127.0.0.1:{peer.getsockname()[1]}"),
            )
            running = asyncio.ensure_future(run.run())
            back = ("127.0.0.1", stack.listeners[0].port)
            invite = parse_message(await loop.sock_recv(peer, 65535))
            assert isinstance(invite, Request)
            ok = make_response(invite, 200, to_tag="t")
            ok["Contact"] = f"<sip:bob@127.0.0.1:{peer.getsockname()[1]}>"
            got: list[str] = []
            for _ in range(2):
                peer.sendto(bytes(ok), back)
                ack = parse_message(await loop.sock_recv(peer, 65535))
                assert isinstance(ack, Request)
                got.append(f"{ack.method} {ack.cseq.number} {ack.top_via.branch}")
            await running
            peer.close()
            return got, run

    got, run = asyncio.run(main())
    assert got[0] == got[1] and got[0].startswith("ACK 1 ")
    assert run.records[0].error is None
