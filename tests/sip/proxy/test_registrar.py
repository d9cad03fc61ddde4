"""REGISTER decisions (RFC 3261 §10.3) over the current bindings, without storage."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from callscript.sip.headers import CSeq
from callscript.sip.message import Request, parse_message
from callscript.sip.registrar import (
    ContactUpdate,
    RegisterDecision,
    RegistrarPolicy,
    decide_register,
    ok_response,
)
from tests.sip.proxy.conftest import conformance_message

POLICY = RegistrarPolicy(default_expires=3600, min_expires=60, max_expires=7200)
AOR = "sip:bob@example.com"


@dataclass(frozen=True)
class Stored:
    """A binding as the location store returns it."""

    contact: str
    call_id: str = "reg-1"
    cseq: int = 1
    q: float = 1.0
    expires_at: float = 4600.0


def register(
    *contacts: str,
    expires: int | str | None = None,
    call_id: str = "reg-1",
    cseq: int = 2,
    to: str = "<sip:bob@example.com>",
) -> Request:
    headers: list[tuple[str, object]] = [
        ("Via", "SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-r"),
        ("Max-Forwards", 70),
        ("From", "<sip:bob@example.com>;tag=f"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", CSeq(cseq, "REGISTER")),
    ]
    headers += [("Contact", c) for c in contacts]
    if expires is not None:
        headers.append(("Expires", expires))
    return Request("REGISTER", "sip:example.com", headers)


def raw_register(*lines: str) -> Request:
    """A REGISTER with header lines exactly as written (for values we would never build)."""
    text = (
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-r\r\n"
        "From: <sip:bob@example.com>;tag=f\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: reg-1\r\n"
        "CSeq: 2 REGISTER\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def decide(message: Request, current: Iterable[Stored] = ()) -> RegisterDecision:
    return decide_register(message, list(current), POLICY, tag="rtag")


def error_of(decision: RegisterDecision) -> tuple[int, str]:
    assert decision.error is not None
    assert not decision.saves and not decision.removes and not decision.remove_all
    assert decision.error.to_addr.tag == "rtag"
    return decision.error.status, decision.error.reason


# -- step 5: the address-of-record ------------------------------------------------------------


def test_new_contact_is_added_with_the_default_expiry() -> None:
    """RFC 3261 §10.3 step 5: the AOR comes from the To URI; a new contact is saved."""
    decision = decide(register("<sip:bob@192.0.2.21:5062>", to='"Bob" <sip:Bob@EXAMPLE.com;x=y>'))
    assert decision.error is None
    assert decision.aor == "sip:Bob@example.com"
    assert decision.saves == [ContactUpdate("sip:bob@192.0.2.21:5062", 1.0, 3600)]


def test_rfc4475_unksm2_register_with_a_non_sip_to_gets_400() -> None:
    """RFC 3261 §10.3 step 5: a To that is not a SIP/SIPS AOR is refused (RFC 4475 unksm2)."""
    message = parse_message(conformance_message("unksm2"))
    assert isinstance(message, Request)
    decision = decide(message)
    assert error_of(decision) == (400, "Bad Request (To must be a SIP or SIPS address-of-record)")
    assert decision.aor == "isbn:2983792873"


def test_to_without_a_user_gets_400() -> None:
    """RFC 3261 §10.3 step 5: an address-of-record has a user part."""
    assert error_of(decide(register("<sip:x@192.0.2.21>", to="<sip:example.com>")))[0] == 400


def test_unreadable_to_gets_400_not_an_exception() -> None:
    """RFC 3261 §10.3 step 5: a To that does not parse is a 400 decision."""
    message = raw_register("Contact: <sip:bob@192.0.2.21>").copy()
    bad = parse_message(
        bytes(message).replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@exa mple")
    )
    assert isinstance(bad, Request)
    decision = decide_register(bad, [], POLICY, tag="rtag")
    assert decision.error is not None and decision.error.status == 400
    assert decision.error.reason.startswith("Bad Request (bad To: ")


# -- step 6: Contact * -------------------------------------------------------------------------


def test_star_with_expires_zero_removes_every_binding() -> None:
    """RFC 3261 §10.3 step 6: 'Contact: *' with Expires 0 removes all bindings of the AOR."""
    decision = decide(
        raw_register("Contact: *", "Expires: 0"), [Stored("sip:bob@a"), Stored("sip:bob@b")]
    )
    assert decision.error is None and decision.remove_all
    assert decision.saves == [] and decision.removes == []


@pytest.mark.parametrize(
    "lines",
    [
        ("Contact: *", "Expires: 60"),
        ("Contact: *",),
        ("Contact: *", "Contact: <sip:bob@192.0.2.21>", "Expires: 0"),
    ],
)
def test_star_needs_expires_zero_and_no_other_contact(lines: tuple[str, ...]) -> None:
    """RFC 3261 §10.3 step 6: '*' with a non-zero or missing Expires, or other contacts, is 400."""
    assert error_of(decide(raw_register(*lines))) == (
        400,
        "Bad Request (Contact * needs Expires 0 and no other Contact)",
    )


def test_star_with_an_old_cseq_of_the_same_call_id_is_refused() -> None:
    """RFC 3261 §10.3 step 6: a binding of the same Call-ID is removed only by a higher CSeq."""
    current = [Stored("sip:bob@a", cseq=5)]
    assert error_of(decide(raw_register("Contact: *", "Expires: 0"), current)) == (
        400,
        "Bad Request (CSeq out of order for this Call-ID)",
    )
    other_call = [Stored("sip:bob@a", call_id="other", cseq=50)]
    assert decide(raw_register("Contact: *", "Expires: 0"), other_call).remove_all


# -- step 7: each contact ----------------------------------------------------------------------


def test_same_call_id_with_a_higher_cseq_refreshes() -> None:
    """RFC 3261 §10.3 step 7: the same Call-ID with a higher CSeq updates the binding."""
    current = [Stored("sip:bob@192.0.2.21:5062;transport=udp", cseq=1)]
    decision = decide(
        register("<sip:bob@192.0.2.21:5062;transport=UDP>", cseq=2, expires=600), current
    )
    assert decision.error is None
    assert decision.saves == [ContactUpdate("sip:bob@192.0.2.21:5062;transport=UDP", 1.0, 600)]


@pytest.mark.parametrize("cseq", [1, 0])
def test_out_of_order_cseq_for_the_same_call_id_is_refused(cseq: int) -> None:
    """RFC 3261 §10.3 step 7: a CSeq not higher than the stored one aborts the whole update."""
    current = [Stored("sip:bob@192.0.2.21:5062", cseq=1)]
    message = register("<sip:new@192.0.2.30>", "<sip:bob@192.0.2.21:5062>", cseq=cseq)
    assert error_of(decide(message, current)) == (
        400,
        "Bad Request (CSeq out of order for this Call-ID)",
    )


def test_another_call_id_replaces_the_binding_whatever_its_cseq() -> None:
    """RFC 3261 §10.3 step 7: a different Call-ID always updates the binding."""
    current = [Stored("sip:bob@192.0.2.21", call_id="old", cseq=90)]
    decision = decide(register("<sip:bob@192.0.2.21>", call_id="new", cseq=1), current)
    assert decision.error is None and len(decision.saves) == 1


def test_expires_zero_removes_that_contact() -> None:
    """RFC 3261 §10.3 step 7: an expiry of 0 removes the binding."""
    decision = decide(register("<sip:bob@192.0.2.21>;expires=0", "<sip:bob@192.0.2.22>"))
    assert decision.removes == ["sip:bob@192.0.2.21"]
    assert decision.saves == [ContactUpdate("sip:bob@192.0.2.22", 1.0, 3600)]
    everything = decide(register("<sip:bob@192.0.2.21>", "<sip:bob@192.0.2.22>", expires=0))
    assert everything.removes == ["sip:bob@192.0.2.21", "sip:bob@192.0.2.22"]


def test_expiry_below_min_expires_gets_423_with_min_expires() -> None:
    """RFC 3261 §10.3 step 7: 0 < expiry < Min-Expires is refused with 423 naming the minimum."""
    decision = decide(register("<sip:bob@192.0.2.21>", expires=30))
    assert error_of(decision) == (423, "Interval Too Brief")
    assert decision.error is not None and str(decision.error["Min-Expires"]) == "60"
    assert decide(register("<sip:bob@192.0.2.21>", expires=60)).error is None


def test_expiry_above_the_maximum_is_clamped() -> None:
    """RFC 3261 §10.3 step 7: the registrar may shorten the expiry to its maximum."""
    decision = decide(register("<sip:bob@192.0.2.21>;expires=99999999999999999999"))
    assert decision.saves == [ContactUpdate("sip:bob@192.0.2.21", 1.0, 7200)]
    assert decide(register("<sip:bob@192.0.2.21>", expires=86400)).saves[0].expires == 7200


def test_contact_expires_parameter_beats_the_expires_header() -> None:
    """RFC 3261 §10.2.1.1: a Contact's expires parameter wins over the Expires header."""
    decision = decide(
        register("<sip:bob@192.0.2.21>;expires=120", "<sip:bob@192.0.2.22>", expires=900)
    )
    assert [(u.contact, u.expires) for u in decision.saves] == [
        ("sip:bob@192.0.2.21", 120),
        ("sip:bob@192.0.2.22", 900),
    ]
    leading_zeros = decide(register("<sip:bob@192.0.2.21>;expires=000000000000300"))
    assert leading_zeros.saves[0].expires == 300


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "²", "", "12 "])
def test_bad_expires_parameter_is_a_400_decision(value: str) -> None:
    """RFC 3261 §10.2.1.1: an expires parameter that is not a number gets 400, never an exception."""
    message = raw_register(f'Contact: <sip:bob@192.0.2.21>;expires="{value}"')
    status, reason = error_of(decide(message))
    assert status == 400 and reason.startswith("Bad Request (bad expires parameter")


def test_bad_expires_header_is_a_400_decision() -> None:
    """RFC 3261 §10.3 step 7: an unreadable Expires header is a 400 decision."""
    status, reason = error_of(
        decide(raw_register("Contact: <sip:bob@192.0.2.21>", "Expires: soon"))
    )
    assert status == 400 and "Expires" in reason


def test_q_values_are_kept() -> None:
    """RFC 3261 §20.10: each contact keeps its q value (1.0 when absent)."""
    decision = decide(
        register(
            "<sip:bob@192.0.2.21>;q=0.5", "<sip:bob@192.0.2.22>;q=1.000", "<sip:bob@192.0.2.23>;q=0"
        )
    )
    assert [u.q for u in decision.saves] == [0.5, 1.0, 0.0]


@pytest.mark.parametrize("value", ["2", "1.5", "0.1234", "-0.1", "nan", "inf", "1e-1", "0.5x", ""])
def test_bad_q_value_is_a_400_decision(value: str) -> None:
    """RFC 3261 §20.10: a qvalue outside 0-1 (three decimals at most) gets 400, never an exception."""
    message = raw_register(f'Contact: <sip:bob@192.0.2.21>;q="{value}"')
    status, reason = error_of(decide(message))
    assert status == 400 and reason.startswith("Bad Request (bad q value")


def test_unreadable_contact_is_a_400_decision() -> None:
    """RFC 3261 §10.3 step 7: a Contact that does not parse gets 400."""
    status, _ = error_of(decide(raw_register("Contact: <sip:bob@192.0.2.21")))
    assert status == 400


def test_contacts_match_by_uri_comparison() -> None:
    """RFC 3261 §10.3 step 7: the stored binding is found by URI equality, not by text."""
    current = [Stored("sip:bob@EXAMPLE.net:5060;transport=tcp", cseq=7)]
    message = register("<sip:bob@example.net:5060;transport=TCP>", cseq=7)
    assert error_of(decide(message, current))[0] == 400  # same binding: the CSeq is old
    other_port = register("<sip:bob@example.net:5070;transport=tcp>", cseq=7)
    assert decide(other_port, current).error is None


def test_no_contact_is_a_query() -> None:
    """RFC 3261 §10.3 step 6: a REGISTER without Contact changes nothing."""
    decision = decide(register())
    assert decision.error is None and decision == RegisterDecision(aor=AOR)


# -- step 8: the answer ------------------------------------------------------------------------


def test_ok_response_lists_every_binding_with_its_remaining_expiry() -> None:
    """RFC 3261 §10.3 step 8: the 200 carries all current bindings with expires left."""
    bindings = [
        Stored("sip:bob@192.0.2.21:5062", expires_at=1600.9),
        Stored("sip:bob@192.0.2.22;transport=tcp", q=0.5, expires_at=1000.0),
        Stored("sip:bob@192.0.2.23", expires_at=999.0),  # expired a moment ago
    ]
    response = ok_response(register(), bindings, now=1000.0, tag="okt")
    assert (response.status, response.to_addr.tag) == (200, "okt")
    assert [str(c) for c in response.contacts] == [
        "<sip:bob@192.0.2.21:5062>;expires=600",
        "<sip:bob@192.0.2.22;transport=tcp>;expires=0;q=0.5",
        "<sip:bob@192.0.2.23>;expires=0",
    ]


def test_ok_response_without_bindings_has_no_contact() -> None:
    """RFC 3261 §10.3 step 8: nothing registered, no Contact."""
    response = ok_response(register(), [], now=0.0, tag="okt")
    assert "Contact" not in response


def test_stored_contact_that_cannot_be_read_matches_nothing() -> None:
    """RFC 3261 §10.3 step 7: a damaged stored binding never blocks a registration."""
    current = [Stored("not a uri", cseq=9)]
    decision = decide(register("<sip:bob@192.0.2.21>", cseq=1), current)
    assert decision.error is None and len(decision.saves) == 1
