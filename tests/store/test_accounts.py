"""Digest accounts, on the memory store and on SQLite (see conftest.py)."""

from __future__ import annotations

import hashlib

import pytest

from callscript.store import (
    AccountExists,
    AccountNotFound,
    AccountStore,
    StoreError,
    supported_algorithms,
)

NOW = 1_700_000_000.0


def _hashlib_has(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


def test_rfc_2617_example_gives_the_published_md5_ha1(accounts: AccountStore) -> None:
    """RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life -> 939e7578..."""
    accounts.add("Mufasa", "host.com", "Circle Of Life", realm="testrealm@host.com", now=NOW)
    assert accounts.ha1("Mufasa", "testrealm@host.com", "MD5") == "939e7578ed9e3c518a452acee763bce9"
    assert accounts.ha1("Mufasa", "testrealm@host.com", "md5") == "939e7578ed9e3c518a452acee763bce9"


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc_7616_example_response_from_the_stored_ha1(
    accounts: AccountStore, algorithm: str, response: str
) -> None:
    """RFC 7616 §3.9.1: the stored H(A1) yields the published responses for MD5 and SHA-256."""
    accounts.add("Mufasa", "example.org", "Circle of Life", realm="http-auth@example.org", now=NOW)
    ha1 = accounts.ha1("Mufasa", "http-auth@example.org", algorithm)
    assert ha1 is not None
    h = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]
    ha2 = hashlib.new(h, b"GET:/dir/index.html").hexdigest()
    nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    data = f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()
    assert hashlib.new(h, data).hexdigest() == response


def test_rfc_8760_sha_512_256_is_stored_exactly_when_hashlib_has_it(
    accounts: AccountStore,
) -> None:
    """RFC 8760 §2: SHA-512-256 H(A1) is kept when this Python can compute it, else skipped."""
    account = accounts.add("alice", "example.com", "s3cret", now=NOW)
    stored = accounts.ha1("alice", "example.com", "SHA-512-256")
    if _hashlib_has("sha512_256"):
        assert "SHA-512-256" in supported_algorithms()
        assert stored == hashlib.new("sha512_256", b"alice:example.com:s3cret").hexdigest()
    else:
        assert "SHA-512-256" not in supported_algorithms()
        assert stored is None
    assert account.algorithms == tuple(sorted(supported_algorithms()))
    assert (
        accounts.ha1("alice", "example.com", "SHA-256")
        == hashlib.sha256(b"alice:example.com:s3cret").hexdigest()
    )


def test_rfc_7616_sess_algorithms_use_the_same_stored_ha1(accounts: AccountStore) -> None:
    """RFC 7616 §3.4.2: MD5-sess and SHA-256-sess start from H(username:realm:passwd)."""
    accounts.add("alice", "example.com", "s3cret", now=NOW)
    assert accounts.ha1("alice", "example.com", "MD5-sess") == accounts.ha1(
        "alice", "example.com", "MD5"
    )
    assert accounts.ha1("alice", "example.com", "sha-256-SESS") == accounts.ha1(
        "alice", "example.com", "SHA-256"
    )


def test_ha1_is_none_for_unknown_user_realm_or_algorithm(accounts: AccountStore) -> None:
    accounts.add("alice", "example.com", "s3cret", now=NOW)
    assert accounts.ha1("bob", "example.com", "MD5") is None
    assert accounts.ha1("alice", "other.example.com", "MD5") is None
    assert accounts.ha1("alice", "example.com", "SHA-1") is None
    assert accounts.ha1("Alice", "example.com", "MD5") is None


def test_lookups_with_undecodable_or_nul_names_find_nothing(accounts: AccountStore) -> None:
    accounts.add("alice", "example.com", "s3cret", now=NOW)
    assert accounts.get("alice\udcff", "example.com") is None
    assert accounts.ha1("alice\x00", "example.com", "MD5") is None
    assert accounts.ha1("alice", "example.com\\", "MD5") is None


def test_realm_defaults_to_the_domain_and_the_domain_is_lower_cased(
    accounts: AccountStore,
) -> None:
    added = accounts.add("alice", "Example.COM", "s3cret", now=NOW)
    assert (added.domain, added.realm, added.role, added.created_at) == (
        "example.com",
        "example.com",
        "user",
        NOW,
    )
    assert accounts.get("alice", "example.com") == added


def test_adding_an_existing_username_fails(accounts: AccountStore) -> None:
    accounts.add("alice", "example.com", "one", now=NOW)
    with pytest.raises(AccountExists):
        accounts.add("alice", "EXAMPLE.com", "two", now=NOW)
    # The realm names the account in a digest response, so it must be unambiguous too.
    accounts.add("bob", "a.example.com", "one", realm="shared", now=NOW)
    with pytest.raises(AccountExists):
        accounts.add("bob", "b.example.com", "two", realm="shared", now=NOW)
    assert (
        accounts.ha1("alice", "example.com", "MD5")
        == hashlib.md5(b"alice:example.com:one").hexdigest()
    )
    assert [a.domain for a in accounts.list()] == ["a.example.com", "example.com"]


def test_set_password_replaces_every_ha1(accounts: AccountStore) -> None:
    before = accounts.add("alice", "example.com", "old", realm="r", now=NOW)
    accounts.set_password("alice", "Example.com", "new")
    after = accounts.get("alice", "r")
    assert after is not None
    assert after.algorithms == before.algorithms
    for name in before.algorithms:
        assert after.ha1[name] != before.ha1[name]
    assert after.ha1["MD5"] == hashlib.md5(b"alice:r:new").hexdigest()
    assert (after.created_at, after.role) == (before.created_at, before.role)


def test_set_password_and_remove_of_unknown_account_raise_not_found(
    accounts: AccountStore,
) -> None:
    with pytest.raises(AccountNotFound):
        accounts.set_password("ghost", "example.com", "x")
    with pytest.raises(AccountNotFound):
        accounts.remove("ghost", "example.com")


def test_remove_deletes_the_account_and_its_ha1s(accounts: AccountStore) -> None:
    accounts.add("alice", "example.com", "s3cret", now=NOW)
    accounts.add("bob", "example.com", "s3cret", now=NOW)
    accounts.remove("alice", "EXAMPLE.COM")
    assert accounts.get("alice", "example.com") is None
    assert accounts.ha1("alice", "example.com", "MD5") is None
    assert [a.username for a in accounts.list()] == ["bob"]
    # The name is free again.
    accounts.add("alice", "example.com", "again", now=NOW)


def test_list_is_sorted_by_domain_then_user_and_filters_by_domain(
    accounts: AccountStore,
) -> None:
    accounts.add("zoe", "b.example.com", "x", now=NOW)
    accounts.add("carol", "b.example.com", "x", role="admin", now=NOW)
    accounts.add("alice", "a.example.com", "x", now=NOW)
    assert [(a.username, a.domain) for a in accounts.list()] == [
        ("alice", "a.example.com"),
        ("carol", "b.example.com"),
        ("zoe", "b.example.com"),
    ]
    assert [a.username for a in accounts.list("B.example.com")] == ["carol", "zoe"]
    assert [a.role for a in accounts.list("b.example.com")] == ["admin", "user"]
    assert accounts.list("nowhere.example.com") == []


@pytest.mark.parametrize(
    ("username", "domain", "password", "role"),
    [
        ("", "example.com", "x", "user"),
        ("a:b", "example.com", "x", "user"),
        ("a@b", "example.com", "x", "user"),
        ("alice", "", "x", "user"),
        ("alice", "exa mple.com", "x", "user"),
        ("alice\r\n", "example.com", "x", "user"),
        ("alice", "example.com", "", "user"),
        ("alice", "example.com", "x", "root"),
        ("al\udcffice", "example.com", "x", "user"),
    ],
)
def test_add_refuses_bad_names_empty_password_and_unknown_roles(
    accounts: AccountStore, username: str, domain: str, password: str, role: str
) -> None:
    with pytest.raises(StoreError):
        accounts.add(username, domain, password, role=role, now=NOW)  # type: ignore[arg-type]
    assert accounts.list() == []


def test_account_never_shows_its_ha1_and_cannot_be_changed(accounts: AccountStore) -> None:
    account = accounts.add(
        "Mufasa", "host.com", "Circle Of Life", realm="testrealm@host.com", now=NOW
    )
    assert "939e7578" not in repr(account)
    with pytest.raises(TypeError):
        account.ha1["MD5"] = "0" * 32  # type: ignore[index]
