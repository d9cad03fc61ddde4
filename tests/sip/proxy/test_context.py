"""Response contexts: choosing the best response and merging challenges (RFC 3261 §16.7)."""

from __future__ import annotations

import pytest

from callscript.sip.events import Peer
from callscript.sip.message import Response, parse_message
from callscript.sip.proxy.context import (
    Branch,
    BranchState,
    ResponseContext,
    Target,
    best_response,
    merge_challenges,
)
from callscript.sip.reply import make_response
from callscript.sip.uri import URI
from tests.sip.proxy.conftest import request

PEER = Peer("UDP", "192.0.2.21", 5060)


def answer(status: int, *headers: tuple[str, object]) -> Response:
    return make_response(request("INVITE"), status, to_tag=f"t{status}", headers=headers)


@pytest.mark.parametrize(
    ("statuses", "chosen"),
    [
        ([486, 603, 404], 603),  # any 6xx first
        ([600, 486, 603], 600),  # the first 6xx
        ([486, 404, 302], 302),  # else the lowest class
        ([500, 404], 404),
        ([404, 486], 404),  # the first of the lowest class
        ([404, 401, 486], 401),  # preferred in that class: 401, 407, 415, 420, 484
        ([480, 407], 407),
        ([484, 415], 415),
        ([484, 420], 420),
        ([404, 484], 484),
        ([500, 401], 401),
    ],
)
def test_best_response_choice(statuses: list[int], chosen: int) -> None:
    """RFC 3261 §16.7 step 6: 6xx first, else the lowest class, 401/407/415/420/484 preferred."""
    responses = [answer(s) for s in statuses]
    status, response = best_response(responses)
    assert status == chosen
    assert response is not None and response.status == chosen
    assert response is responses[statuses.index(chosen)]


def test_503_is_replaced_by_500() -> None:
    """RFC 3261 §16.7 step 6: a chosen 503 is turned into a 500 (the caller must not retry us)."""
    original = answer(503)
    status, response = best_response([original, answer(504)])
    assert (status, response) == (500, original)
    assert best_response([answer(502), answer(503)])[0] == 502


def test_no_final_response_means_408() -> None:
    """RFC 3261 §16.7 step 6: with no final response at all the proxy sends 408."""
    assert best_response([]) == (408, None)


def test_challenges_of_other_401_and_407_are_added_unchanged() -> None:
    """RFC 3261 §16.7 step 7: every WWW-/Proxy-Authenticate of the others joins the chosen one."""
    www = 'Digest realm="a", nonce="1"'
    other_www = 'Digest realm="b",  nonce="2" , algorithm=MD5'  # odd spacing stays as it came
    proxy_auth = 'Digest realm="c", nonce="3"'
    chosen = answer(401, ("WWW-Authenticate", www))
    forwarded = chosen.copy()
    raw = bytes(answer(401)).replace(
        b"\r\n\r\n", f"\r\nWWW-Authenticate: {other_www}\r\n\r\n".encode()
    )
    other = parse_message(raw)
    assert isinstance(other, Response)
    merge_challenges(
        forwarded,
        [
            other,
            answer(407, ("Proxy-Authenticate", proxy_auth)),
            answer(486),
        ],
    )
    assert len(forwarded.get_all("WWW-Authenticate")) == 2
    assert f"WWW-Authenticate: {www}\r\n".encode() in bytes(forwarded)
    assert f"WWW-Authenticate: {other_www}\r\n".encode() in bytes(forwarded)
    assert f"Proxy-Authenticate: {proxy_auth}\r\n".encode() in bytes(forwarded)
    assert len(chosen.get_all("WWW-Authenticate")) == 1  # the stored original is untouched


def test_challenges_are_merged_only_into_401_or_407() -> None:
    """RFC 3261 §16.7 step 7: a forwarded 486 gets no challenges."""
    busy = answer(486)
    merge_challenges(busy, [answer(401, ("WWW-Authenticate", 'Digest realm="a", nonce="1"'))])
    assert "WWW-Authenticate" not in busy


def test_target_needs_a_peer_and_branches_walk_the_peers() -> None:
    """RFC 3263 §4.3: a branch tries the target's peers in order."""
    with pytest.raises(ValueError, match="at least one peer"):
        Target(None, ())
    second = Peer("TCP", "192.0.2.22", 5060)
    branch = Branch(Target(URI.parse("sip:bob@192.0.2.21"), (PEER, second)), 0)
    assert branch.peer == PEER and branch.has_next_peer
    branch.peer_index += 1
    assert branch.peer == second and not branch.has_next_peer


def test_live_branches_are_those_without_a_final_response() -> None:
    """RFC 3261 §16.7: a context waits for every branch that has no final response yet."""
    ctx = ResponseContext("k", request("INVITE"), PEER)
    for _ in range(3):
        ctx.branches.append(Branch(Target(None, (PEER,)), ctx.branch_count()))
    ctx.branches[1].state = BranchState.DONE
    ctx.branches[2].state = BranchState.RINGING
    assert [b.index for b in ctx.live_branches()] == [0, 2]
    assert ctx.branch_count() == 3
