"""The SIP process's side of the protocol: only checked JSON becomes typed actions."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from callscript.sandbox.actions import (
    Default,
    Finished,
    Log,
    Pending,
    Proxied,
    Proxy,
    Reject,
    StepFailed,
    Voicemail,
    action_dict,
)
from callscript.sandbox.policy import DomainPolicy
from callscript.sandbox.protocol import (
    ProtocolViolation,
    check_event,
    check_outcome,
    decode,
    encode,
    event_data,
    parse_reply,
)
from callscript.sip.message import parse_message

from .conftest import SERVED, make_event

RULES = DomainPolicy()
EVENT = make_event()


def parse(reply: dict[str, Any], event: dict[str, Any] = EVENT) -> Any:
    return parse_reply(reply, RULES, event, SERVED)


PROXY: dict[str, Any] = {
    "kind": "proxy",
    "targets": ["sip:alice@desk.example.com"],
    "timeout": 15,
    "sequential": False,
    "seq": 1,
    "line": 4,
}
LOG: dict[str, Any] = {"kind": "log", "text": "hello", "seq": 0, "line": 2}


def test_good_replies_become_typed_results() -> None:
    """Pending, Finished and failed replies parse into typed values."""
    pending = parse({"status": "pending", "actions": [LOG, PROXY], "proxy": PROXY})
    assert pending == Pending(
        (Log("hello", 0, 2), Proxy(("sip:alice@desk.example.com",), 15, False, 1, 4)), pending.proxy
    )
    reject = {"kind": "reject", "code": 486, "reason": "Busy Here", "seq": 0, "line": 3}
    done = parse(
        {
            "status": "finished",
            "actions": [reject],
            "disposition": {"kind": "reject", "code": 486, "reason": "Busy Here"},
        }
    )
    assert isinstance(done, Finished) and done.disposition == Reject(486, "Busy Here", 0, 3)
    assert (
        parse({"status": "finished", "actions": [], "disposition": {"kind": "proxied"}}).disposition
        == Proxied()
    )
    failed = parse(
        {
            "status": "failed",
            "actions": [],
            "failure": {"kind": "timeout", "line": None, "message": "slow"},
        }
    )
    assert isinstance(failed, StepFailed) and failed.fallback == Default()


BAD_REPLIES: list[dict[str, Any]] = [
    {"status": "pending", "actions": [LOG], "proxy": LOG},
    {"status": "pending", "actions": [PROXY], "proxy": PROXY},
    {
        "status": "pending",
        "actions": [LOG, {**PROXY, "targets": []}],
        "proxy": {**PROXY, "targets": []},
    },
    {
        "status": "finished",
        "actions": [{**LOG, "text": "a\r\nb"}],
        "disposition": {"kind": "default"},
    },
    {
        "status": "finished",
        "actions": [{**LOG, "text": "x" * 501}],
        "disposition": {"kind": "default"},
    },
    {
        "status": "finished",
        "actions": [{**LOG, "extra": 1}],
        "disposition": {"kind": "default"},
    },
    {
        "status": "finished",
        "actions": [{**LOG, "line": "2"}],
        "disposition": {"kind": "default"},
    },
    {
        "status": "finished",
        "actions": [{**LOG, "line": True}],
        "disposition": {"kind": "default"},
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {"kind": "reject", "code": 486.0, "reason": None},
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {"kind": "reject", "code": 999, "reason": None},
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {"kind": "reject", "code": 486, "reason": "a\nb"},
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {"kind": "reject", "code": 486, "reason": None},
    },
    {"status": "finished", "actions": [], "disposition": {"kind": "accept"}},
    {
        "status": "finished",
        "actions": [],
        "disposition": {"kind": "redirect", "targets": ["sip:a@10.0.0.1"], "permanent": False},
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {
            "kind": "proxy",
            "targets": ["sip:a@evil.org"],
            "timeout": 10,
            "sequential": False,
        },
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {
            "kind": "proxy",
            "targets": ["sip:a@example.com"],
            "timeout": 1000,
            "sequential": False,
        },
    },
    {
        "status": "finished",
        "actions": [],
        "disposition": {
            "kind": "proxy",
            "targets": ["sip:a@example.com"] * 9,
            "timeout": 10,
            "sequential": False,
        },
    },
    {"status": "finished", "actions": [], "disposition": {"kind": "log", "text": "x"}},
    {
        "status": "finished",
        "actions": [{**PROXY, "seq": i, "targets": []} for i in range(6)],
        "disposition": {"kind": "relay"},
    },
    {"status": "finished", "actions": [{**LOG, "seq": 1}], "disposition": {"kind": "default"}},
    {"status": "finished", "actions": "nope", "disposition": {"kind": "default"}},
    {
        "status": "failed",
        "actions": [],
        "failure": {"kind": "quarantined", "line": None, "message": "x"},
    },
    {
        "status": "failed",
        "actions": [],
        "failure": {"kind": "error", "line": None, "message": "a\nb"},
    },
    {"status": "weird", "actions": []},
]


@pytest.mark.parametrize("reply", BAD_REPLIES)
def test_bad_replies_are_protocol_violations(reply: dict[str, Any]) -> None:
    """Wrong types (bool, float for int), extra keys, out-of-range values, refused targets,
    control characters, too many actions: each is a ProtocolViolation."""
    with pytest.raises(ProtocolViolation):
        parse(reply)


def test_accept_is_checked_against_the_method() -> None:
    """accept() is valid for OPTIONS, not for INVITE."""
    accept = {"kind": "accept", "seq": 0, "line": 3}
    reply = {"status": "finished", "actions": [accept], "disposition": {"kind": "accept"}}
    assert parse(reply, make_event(method="OPTIONS")).disposition.kind == "accept"
    with pytest.raises(ProtocolViolation):
        parse(reply)


def test_decode_refuses_what_is_not_one_json_object() -> None:
    """Lines that are cut, too long, too deep or not objects are refused."""
    assert decode(encode({"a": [1, "é"]})) == {"a": [1, "é"]}
    for line in [b'{"a": 1}', b"[1]\n", b"\xff\n", b"[" * 100000 + b"\n", b"1" * (5 << 20) + b"\n"]:
        with pytest.raises(ProtocolViolation):
            decode(line)
    assert encode({"x": "é"}).isascii()


def test_outcomes_and_action_dicts() -> None:
    """Outcomes are checked; actions print back as plain dicts."""
    assert check_outcome("busy") == {"result": "busy"}
    assert check_outcome("redirection", ["sip:a@b.com"]) == {
        "result": "redirection",
        "targets": ["sip:a@b.com"],
    }
    with pytest.raises(ValueError):
        check_outcome("ringing")
    assert action_dict(Voicemail(seq=2, line=5)) == {"kind": "voicemail", "seq": 2, "line": 5}
    assert action_dict(Proxy(("sip:a@b.com",), 10)) == {
        "kind": "proxy", "targets": ["sip:a@b.com"], "timeout": 10, "sequential": False, "seq": None, "line": None,
    }  # fmt: skip


def test_event_data_from_a_request_leaves_hidden_headers_out() -> None:
    """event_data() builds the documented shape from a parsed request, one entry per
    header value, without the policy's hidden headers."""
    raw = (
        b"INVITE sip:alice@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK2\r\n"
        b'From: "Bob" <sip:bob@example.org>;tag=1\r\n'
        b"To: <sip:alice@example.com>\r\n"
        b"Call-ID: x@y\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Max-Forwards: 70\r\n"
        b'Proxy-Authorization: Digest username="bob", response="secret"\r\n'
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    request = parse_message(raw)
    at = datetime.datetime(2024, 5, 6, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    data = event_data(
        request,  # type: ignore[arg-type]
        direction="incoming",
        owner="sip:alice@example.com",
        contacts=["sip:alice@192.0.2.4"],
        time=at,
        hidden_headers=RULES.api.hidden_headers,
    )
    assert data["time"] == "2024-05-06T09:30:00+02:00"
    assert data["uri"] == "sip:alice@example.com" and data["method"] == "INVITE"
    assert data["body"] == "hi"
    names = [name for name, _ in data["headers"]]
    assert names == [
        "Via",
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Content-Type",
        "Content-Length",
    ]
    assert "secret" not in str(data)


@pytest.mark.parametrize(
    "change",
    [
        {"direction": "sideways"},
        {"time": "yesterday"},
        {"uri": "not a uri"},
        {"contacts": ["sip:ok@example.com", 5]},
        {"headers": [["From"]]},
        {"headers": [("From", "x")]},
        {"method": None},
        {"extra": 1},
    ],
)
def test_malformed_event_data_is_refused(change: dict[str, Any]) -> None:
    """check_event (run by the pool before queueing) names what is wrong with event data."""
    check_event(make_event())
    with pytest.raises(ValueError, match="event data"):
        check_event({**make_event(), **change})
