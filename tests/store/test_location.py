"""The location service, on the memory store and on SQLite (see conftest.py)."""

from __future__ import annotations

import pytest

from callscript.store import Binding, LocationStore, StoreError

AOR = "sip:alice@example.com"
NOW = 1_700_000_000.0


def binding(contact: str = "sip:alice@192.0.2.1:5060", **changes: object) -> Binding:
    """A binding of AOR that expires an hour after NOW unless ``changes`` say otherwise."""
    fields: dict[str, object] = {
        "aor": AOR,
        "contact": contact,
        "expires_at": NOW + 3600,
        "call_id": "call-1@192.0.2.1",
        "cseq": 1,
    }
    fields.update(changes)
    return Binding(**fields)  # type: ignore[arg-type]


def contacts(location: LocationStore, aor: str = AOR, *, now: float = NOW) -> list[str]:
    return [b.contact for b in location.bindings(aor, now=now)]


def test_saved_binding_is_returned_with_every_field(location: LocationStore) -> None:
    """RFC 3261 §10: a REGISTER's contact, its NAT source, Path and outbound ids are kept."""
    saved = binding(
        q=0.5,
        received="udp:198.51.100.7:40123",
        path=("<sip:edge.example.com;lr>", "<sip:p2.example.com;lr>"),
        instance_id='"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
        reg_id=1,
        user_agent="softphone/1.0",
    )
    location.save(saved)
    assert location.bindings(AOR, now=NOW) == [saved]


def test_binding_is_gone_once_now_reaches_expires_at(location: LocationStore) -> None:
    location.save(binding(expires_at=NOW + 60))
    assert contacts(location, now=NOW + 59.9) == ["sip:alice@192.0.2.1:5060"]
    assert contacts(location, now=NOW + 60) == []
    assert location.find(AOR, "sip:alice@192.0.2.1:5060", now=NOW + 60) is None
    assert location.count(now=NOW + 60) == 0


def test_expire_deletes_only_expired_bindings_and_counts_them(location: LocationStore) -> None:
    location.save(binding("sip:a@192.0.2.1", expires_at=NOW + 10))
    location.save(binding("sip:b@192.0.2.2", expires_at=NOW + 20))
    location.save(binding("sip:c@192.0.2.3", aor="sip:bob@example.com", expires_at=NOW + 10))
    assert location.expire(now=NOW + 10) == 2
    assert location.expire(now=NOW + 10) == 0
    # Deleted, not just hidden: asking about an earlier time finds nothing either.
    assert contacts(location, now=NOW) == ["sip:b@192.0.2.2"]
    assert contacts(location, "sip:bob@example.com", now=NOW) == []


def test_count_covers_every_aor_and_skips_expired(location: LocationStore) -> None:
    location.save(binding("sip:a@192.0.2.1"))
    location.save(binding("sip:b@192.0.2.2", expires_at=NOW - 1))
    location.save(binding("sip:c@192.0.2.3", aor="sip:bob@example.com"))
    assert location.count(now=NOW) == 2


def test_bindings_are_ordered_by_q_then_most_recently_saved(location: LocationStore) -> None:
    location.save(binding("sip:low@192.0.2.1", q=0.1))
    location.save(binding("sip:old@192.0.2.2", q=0.7))
    location.save(binding("sip:top@192.0.2.3", q=1.0))
    location.save(binding("sip:new@192.0.2.4", q=0.7))
    assert contacts(location) == [
        "sip:top@192.0.2.3",
        "sip:new@192.0.2.4",
        "sip:old@192.0.2.2",
        "sip:low@192.0.2.1",
    ]
    # A refresh makes a binding the newest of its q.
    location.save(binding("sip:old@192.0.2.2", q=0.7, cseq=2))
    assert contacts(location)[1:3] == ["sip:old@192.0.2.2", "sip:new@192.0.2.4"]


def test_saving_the_same_contact_replaces_its_binding(location: LocationStore) -> None:
    location.save(binding(cseq=1, q=0.2))
    location.save(binding(cseq=2, q=0.9, call_id="call-2@192.0.2.1", expires_at=NOW + 30))
    [only] = location.bindings(AOR, now=NOW)
    assert (only.cseq, only.q, only.call_id, only.expires_at) == (
        2,
        0.9,
        "call-2@192.0.2.1",
        NOW + 30,
    )
    assert location.count(now=NOW) == 1


def test_find_returns_the_stored_binding_so_the_registrar_can_compare_cseq(
    location: LocationStore,
) -> None:
    location.save(binding("sip:alice@Host.example.com", cseq=41))
    found = location.find(AOR, "sip:alice@host.example.com", now=NOW)
    assert found is not None
    assert (found.contact, found.call_id, found.cseq) == (
        "sip:alice@Host.example.com",
        "call-1@192.0.2.1",
        41,
    )
    assert location.find(AOR, "sip:Alice@host.example.com", now=NOW) is None
    assert location.find("sip:bob@example.com", "sip:alice@host.example.com", now=NOW) is None


def test_rfc_3261_host_case_replaces_and_user_case_does_not(location: LocationStore) -> None:
    """RFC 3261 §19.1.4: hosts compare case-insensitively, the user part case-sensitively."""
    location.save(binding("sip:A@Host.com", cseq=1))
    location.save(binding("sip:A@host.com", cseq=2))
    assert contacts(location) == ["sip:A@host.com"]
    location.save(binding("sip:a@host.com", cseq=3))
    assert sorted(contacts(location)) == ["sip:A@host.com", "sip:a@host.com"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("sip:%61lice@h.example.com", "sip:alice@h.example.com"),
        ("sip:a@h.example.com;transport=TCP;lr", "sip:a@h.example.com;lr;transport=tcp"),
        ("sip:a@h.example.com;ob", "sip:a@h.example.com"),
        ("sip:a@h.example.com?Subject=x", "sip:a@h.example.com?subject=x"),
        ("SIP:a@[2001:DB8::1]:5070", "sip:a@[2001:db8::1]:5070"),
    ],
)
def test_rfc_3261_equal_contacts_are_one_binding(
    location: LocationStore, first: str, second: str
) -> None:
    """RFC 3261 §19.1.4: escapes, parameter order and case, one-sided parameters do not count."""
    location.save(binding(first, cseq=1))
    location.save(binding(second, cseq=2))
    assert contacts(location) == [second]
    assert location.remove(AOR, first) == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("sip:a@h.example.com", "sip:a@h.example.com:5060"),
        ("sip:a@h.example.com", "sip:a@h.example.com;transport=tcp"),
        ("sip:a@h.example.com;rinstance=1", "sip:a@h.example.com;rinstance=2"),
        ("sip:a@h.example.com", "sips:a@h.example.com"),
        ("sip:a@h.example.com", "sip:a@h.example.com?subject=x"),
    ],
)
def test_rfc_3261_different_contacts_are_two_bindings(
    location: LocationStore, first: str, second: str
) -> None:
    """RFC 3261 §19.1.4: an explicit port, a transport, a differing shared parameter all count."""
    location.save(binding(first))
    location.save(binding(second))
    assert sorted(contacts(location)) == sorted([first, second])


def test_a_contact_equal_to_several_bindings_replaces_them_all(location: LocationStore) -> None:
    """RFC 3261 §19.1.4: equality is not transitive, so one contact may match two bindings."""
    location.save(binding("sip:a@h.example.com;x=1"))
    location.save(binding("sip:a@h.example.com;x=2"))
    location.save(binding("sip:a@h.example.com"))
    assert contacts(location) == ["sip:a@h.example.com"]


def test_tel_contacts_ignore_visual_separators(location: LocationStore) -> None:
    """RFC 3966 §4: tel:+1-201-555-0123 and tel:+12015550123 are the same binding."""
    location.save(binding("tel:+1-201-555-0123"))
    location.save(binding("tel:+12015550123", cseq=2))
    assert contacts(location) == ["tel:+12015550123"]


def test_remove_drops_one_contact_and_reports_how_many(location: LocationStore) -> None:
    location.save(binding("sip:a@192.0.2.1"))
    location.save(binding("sip:b@192.0.2.2"))
    assert location.remove(AOR, "sip:a@192.0.2.1") == 1
    assert location.remove(AOR, "sip:a@192.0.2.1") == 0
    assert location.remove("sip:bob@example.com", "sip:b@192.0.2.2") == 0
    assert contacts(location) == ["sip:b@192.0.2.2"]


def test_remove_all_clears_one_aor_only(location: LocationStore) -> None:
    location.save(binding("sip:a@192.0.2.1"))
    location.save(binding("sip:b@192.0.2.2"))
    location.save(binding("sip:c@192.0.2.3", aor="sip:bob@example.com"))
    assert location.remove_all(AOR) == 2
    assert location.remove_all(AOR) == 0
    assert contacts(location) == []
    assert contacts(location, "sip:bob@example.com") == ["sip:c@192.0.2.3"]


def test_saving_a_contact_that_is_not_a_uri_raises_store_error(location: LocationStore) -> None:
    with pytest.raises(StoreError, match="not a contact URI"):
        location.save(binding("not a uri"))
    with pytest.raises(StoreError):
        location.remove(AOR, "<sip:a@b>")
    assert location.count(now=NOW) == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"q": 1.5},
        {"q": -0.1},
        {"q": float("nan")},
        {"cseq": -1},
        {"cseq": 2**32},
        {"expires_at": float("inf")},
        {"aor": ""},
        {"call_id": ""},
        {"reg_id": -1},
        {"reg_id": 2**32},
        {"path": ["<sip:p.example.com;lr>"]},
    ],
)
def test_binding_refuses_impossible_values(changes: dict[str, object]) -> None:
    with pytest.raises(StoreError):
        binding("sip:alice@192.0.2.1", **changes)


def test_text_from_a_peer_round_trips_exactly(location: LocationStore) -> None:
    """Undecodable bytes (lone surrogates), NUL and backslashes survive storage unchanged."""
    aor = "sip:\udcff\x00\\u0041@example.com"  # what URI.aor makes of sip:%FF%00%5Cu0041@...
    saved = binding(
        "sip:%FF@192.0.2.1",
        aor=aor,
        call_id="c\\1",
        user_agent="phone \udce9 caf\u00e9",
        instance_id='"<urn:\x00>"',
        path=("<sip:\udcff@p.example.com;lr>",),
    )
    location.save(saved)
    assert location.bindings(aor, now=NOW) == [saved]
    assert location.bindings("sip:\\udcff\\u0000\\\\u0041@example.com", now=NOW) == []
    assert location.find(aor, "sip:%ff@192.0.2.1", now=NOW) == saved
    assert location.remove(aor, "sip:%FF@192.0.2.1") == 1


def test_the_largest_32_bit_cseq_and_reg_id_are_stored(location: LocationStore) -> None:
    saved = binding(cseq=2**32 - 1, reg_id=2**32 - 1)
    location.save(saved)
    assert location.bindings(AOR, now=NOW) == [saved]


def test_expires_in_rounds_down_and_stops_at_zero() -> None:
    b = binding(expires_at=NOW + 10.7)
    assert b.expires_in(now=NOW) == 10
    assert b.expires_in(now=NOW + 11) == 0
    assert not b.expired(now=NOW + 10.6)
    assert b.expired(now=NOW + 10.7)
