"""What the rest of callscript may ask of storage: records, errors and Protocols.

Two stores live behind these Protocols:

- the location service (RFC 3261 §10): bindings of an address of record
  (AOR) to the Contact URIs its user agents registered;
- accounts for digest authentication, kept as H(A1) values only, never as
  passwords (computed by :func:`callscript.sip.digest.ha1`).

Store methods are synchronous, short, and take everything they need as
arguments: the time (``now``, wall-clock epoch seconds, because bindings
outlive the process) included. Nothing here is specific to SQLite, so a
PostgreSQL store shared by several nodes can implement the same Protocols.
"""

from __future__ import annotations

import builtins
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

from callscript.errors import CallscriptError
from callscript.sip import digest
from callscript.sip.abnf import has_control, unescape
from callscript.sip.errors import ParseError
from callscript.sip.uri import URI, parse_uri, uri_equal

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")

# RFC 3261 §19.1.4: these URI parameters must match whenever either URI has them.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")
# The parser admits any 32-bit CSeq number (RFC 4475 torture tests), so storage must too.
_MAX_UINT32 = 2**32 - 1


# -- errors --------------------------------------------------------------------


class StoreError(CallscriptError):
    """A store refused an operation or its database is unusable."""


class AccountExists(StoreError):
    """An account with this username already exists in the domain or realm."""


class AccountNotFound(StoreError):
    """No account has this username in the domain."""


# -- records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One registered contact of an address of record (RFC 3261 §10).

    Attributes:
        aor: the address-of-record key, as ``URI.aor`` prints it (``sip:alice@example.com``).
        contact: the Contact URI exactly as registered.
        expires_at: wall-clock epoch seconds after which the binding is gone.
        call_id: Call-ID of the REGISTER that made or last refreshed the binding.
        cseq: CSeq number of that REGISTER.
        q: preference between 0 and 1, higher first.
        received: ``transport:host:port`` the REGISTER came from, to reach a UA behind NAT.
        path: Path header URIs of the REGISTER, top first (RFC 3327).
        instance_id: ``+sip.instance`` of the UA (RFC 5626), or ``None``.
        reg_id: ``reg-id`` of the flow (RFC 5626), or ``None``.
        user_agent: the REGISTER's User-Agent, for display only.
    """

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    q: float = 1.0
    received: str | None = None
    path: tuple[str, ...] = ()
    instance_id: str | None = None
    reg_id: int | None = None
    user_agent: str | None = None

    def __post_init__(self) -> None:
        if not self.aor or not self.contact or not self.call_id:
            raise StoreError("a binding needs an aor, a contact and a call_id")
        if not 0.0 <= self.q <= 1.0:  # also refuses NaN
            raise StoreError(f"q must be between 0 and 1, not {self.q!r}")
        if not 0 <= self.cseq <= _MAX_UINT32:
            raise StoreError(f"cseq out of range: {self.cseq!r}")
        if not math.isfinite(self.expires_at):
            raise StoreError(f"expires_at must be a finite time, not {self.expires_at!r}")
        if not isinstance(self.path, tuple):
            raise StoreError("path must be a tuple of URIs")
        if self.reg_id is not None and not 0 <= self.reg_id <= _MAX_UINT32:
            raise StoreError(f"reg_id out of range: {self.reg_id!r}")

    def expired(self, *, now: float) -> bool:
        """True once ``now`` has reached ``expires_at``."""
        return self.expires_at <= now

    def expires_in(self, *, now: float) -> int:
        """Whole seconds left, rounded down and never negative (for an ``expires`` parameter)."""
        return max(0, math.floor(self.expires_at - now))


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A user who may authenticate with digest.

    Attributes:
        username: the digest username (the user part of the AOR, case kept).
        domain: the SIP domain the user belongs to, lower-case.
        realm: the digest realm the H(A1) values were made for.
        ha1: hex H(username:realm:password) per algorithm name (``MD5``, ``SHA-256``...).
        role: ``user`` or ``admin``.
        created_at: wall-clock epoch seconds.
    """

    username: str
    domain: str
    realm: str
    ha1: Mapping[str, str] = field(repr=False)
    role: Role = "user"
    created_at: float = 0.0

    def __post_init__(self) -> None:
        # A read-only copy, so that a frozen Account cannot change under its store.
        object.__setattr__(self, "ha1", MappingProxyType(dict(self.ha1)))

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Names of the algorithms this account can authenticate with, sorted."""
        return tuple(sorted(self.ha1))


# -- protocols -----------------------------------------------------------------


class LocationStore(Protocol):
    """Bindings of addresses of record to contacts (RFC 3261 §10).

    A contact is identified by URI comparison (RFC 3261 §19.1.4), not by its
    text: saving ``sip:a@Host.com`` replaces a binding of ``sip:a@host.com``.
    Expired bindings are never returned, whether or not :meth:`expire` ran.
    """

    def bindings(self, aor: str, *, now: float) -> list[Binding]:
        """The unexpired bindings of ``aor``: highest q first, then most recently saved."""
        ...

    def find(self, aor: str, contact: str, *, now: float) -> Binding | None:
        """The unexpired binding of ``aor`` whose contact equals ``contact``, or ``None``.

        The registrar compares its Call-ID and CSeq with a new REGISTER's.
        """
        ...

    def save(self, binding: Binding) -> None:
        """Insert ``binding``, replacing every binding of its AOR with an equal contact.

        Raises:
            StoreError: the contact is not a valid URI.
        """
        ...

    def remove(self, aor: str, contact: str) -> int:
        """Remove the bindings of ``aor`` whose contact equals ``contact``; returns how many."""
        ...

    def remove_all(self, aor: str) -> int:
        """Remove every binding of ``aor``; returns how many."""
        ...

    def expire(self, *, now: float) -> int:
        """Delete the bindings that expired at or before ``now``; returns how many."""
        ...

    def count(self, *, now: float) -> int:
        """How many unexpired bindings there are, over all AORs."""
        ...


class AccountStore(Protocol):
    """Digest accounts, stored as H(A1) per algorithm and never as passwords."""

    def add(
        self,
        username: str,
        domain: str,
        password: str,
        *,
        realm: str | None = None,
        role: Role = "user",
        now: float,
    ) -> Account:
        """Create an account; ``realm`` defaults to ``domain``.

        Raises:
            AccountExists: ``username`` is taken in ``domain`` or in ``realm``.
            StoreError: a name or the role is not acceptable.
        """
        ...

    def set_password(self, username: str, domain: str, password: str) -> None:
        """Replace the H(A1) values of an account.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    def remove(self, username: str, domain: str) -> None:
        """Delete an account.

        Raises:
            AccountNotFound: no such account.
        """
        ...

    def get(self, username: str, realm: str) -> Account | None:
        """The account a digest response names, or ``None``."""
        ...

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """Hex H(A1) of the account for ``algorithm`` (RFC 8760 name), or ``None``."""
        ...

    def list(self, domain: str | None = None) -> builtins.list[Account]:
        """Every account (of ``domain`` when given), by domain then username."""
        ...


class Store(Protocol):
    """Everything callscript keeps, opened once and passed to whoever needs it."""

    @property
    def location(self) -> LocationStore:
        """The location service."""
        ...

    @property
    def accounts(self) -> AccountStore:
        """The digest accounts."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


# -- contact comparison ----------------------------------------------------------


def parse_contact(contact: str) -> URI:
    """Parse a stored or to-be-stored Contact URI.

    Raises:
        StoreError: ``contact`` is not an absolute URI.
    """
    try:
        return parse_uri(contact)
    except ParseError as exc:
        raise StoreError(f"not a contact URI: {contact[:80]!r}: {exc}") from None


def contact_key(uri: URI) -> str:
    """The part of RFC 3261 §19.1.4 comparison that depends on one URI alone.

    Equal URIs always have equal keys, so a store can look candidates up by
    key (an indexed column) and then confirm with :func:`contacts_equal`.
    Parameters other than user/ttl/method/maddr/transport stay out of the key:
    they count only when both URIs have them, which no single-URI key can say.
    """
    if uri.scheme == "tel":
        # RFC 3966 §4: visual separators do not count when comparing numbers.
        return json.dumps(["tel", re.sub(r"[\-.()]", "", unescape(uri.user or "")).lower()])
    if not uri.is_sip:
        return json.dumps([uri.scheme, unescape(uri.opaque)])
    strict = sorted(
        (name, None if value is None else unescape(value).lower())
        for name, value in uri.params.items()
        if name in _STRICT_PARAMS
    )
    headers = sorted({(unescape(k).lower(), unescape(v)) for k, v in uri.headers})
    user = None if uri.user is None else unescape(uri.user)
    password = None if uri.password is None else unescape(uri.password)
    return json.dumps([uri.scheme, user, password, uri.host.lower(), uri.port, strict, headers])


def contacts_equal(a: URI, b: URI) -> bool:
    """RFC 3261 §19.1.4: whether two contacts name the same binding."""
    return uri_equal(a, b)


def order_bindings(rows: builtins.list[tuple[int, Binding]]) -> builtins.list[Binding]:
    """Bindings by q, highest first, then by save sequence, newest first."""
    return [binding for _, binding in sorted(rows, key=lambda row: (-row[1].q, -row[0]))]


# -- text a SQL database can hold -------------------------------------------------

# Peer bytes that are not UTF-8 reach us as lone surrogates (surrogateescape), and
# %00 unescapes to NUL; neither SQLite (UTF-8) nor PostgreSQL text can hold them.
_UNSAFE_RE = re.compile(r"[\\\x00\ud800-\udfff]")
_ESCAPED_RE = re.compile(r"\\(\\|u[0-9a-f]{4})")


def to_sql_text(text: str) -> str:
    """``text`` in a form any SQL text column holds, reversibly (:func:`from_sql_text`).

    Backslash doubles; NUL and lone surrogates become ``\\uXXXX``; everything
    else, UTF-8 included, is stored as it is.
    """
    if _UNSAFE_RE.search(text) is None:
        return text
    return _UNSAFE_RE.sub(lambda m: "\\\\" if m[0] == "\\" else f"\\u{ord(m[0]):04x}", text)


def from_sql_text(text: str) -> str:
    """The text :func:`to_sql_text` stored."""
    if "\\" not in text:
        return text
    return _ESCAPED_RE.sub(lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), text)


# -- digest H(A1) ----------------------------------------------------------------


def canonical_algorithm(name: str) -> str | None:
    """The stored algorithm for ``name`` (any case, ``-sess`` allowed), or ``None`` if unknown."""
    known = digest.canonical_algorithm(name)
    # RFC 7616 §3.4.2: a -sess A1 is built on H(username:realm:passwd), the same stored value.
    return None if known is None else digest.base_algorithm(known)


def supported_algorithms() -> tuple[str, ...]:
    """The RFC 8760 algorithms this Python's hashlib can compute, strongest first.

    SHA-512-256 is missing from some OpenSSL builds; it is then left out.
    """
    return tuple(name for name in digest.ALGORITHMS if not name.endswith("-sess"))


def compute_ha1s(username: str, realm: str, password: str) -> dict[str, str]:
    """H(username:realm:password) for every supported algorithm, by RFC 8760 name.

    Raises:
        StoreError: the password is empty.
    """
    if not password:
        raise StoreError("the password must not be empty")
    return {name: digest.ha1(username, realm, password, name) for name in supported_algorithms()}


def check_account_names(username: str, domain: str, realm: str, role: str) -> None:
    """Refuse names that would make H(A1) ambiguous or a header unprintable.

    Raises:
        StoreError: what is wrong.
    """
    for label, value in (("username", username), ("domain", domain), ("realm", realm)):
        if not value or has_control(value) or value != value.strip() or not _utf8(value):
            raise StoreError(f"bad {label}: {value!r}")
    # A ':' in the username would let "a:b" + realm "c" collide with "a" + realm "b:c".
    if ":" in username or "@" in username:
        raise StoreError(f"a username cannot contain ':' or '@': {username!r}")
    if "@" in domain or " " in domain:
        raise StoreError(f"bad domain: {domain!r}")
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _utf8(text: str) -> bool:
    # Undecodable bytes (lone surrogates) could not go into a header or onto a terminal.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
