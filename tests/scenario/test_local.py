"""Scenarios against scenarios, in one process over loopback sockets: each step's outcome."""

from __future__ import annotations

import asyncio

import pytest

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
