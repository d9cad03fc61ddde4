"""Digest computations and the client side of SIP digest authentication.

RFC 3261 §22.3 (challenges from several proxies), §22.4 (Digest in SIP),
RFC 2617 §3.2.1 (challenge), §3.2.2 (credentials: A1, A2, request-digest,
qop, nc, cnonce), RFC 7616 §3.4 (SHA-256, the ``-sess`` variants) and
RFC 8760 §2 (SHA-256 and SHA-512-256 for SIP, several challenges per response).

Everything here is a pure function of its arguments: the cnonce and the
nonce-count come from the caller, who keeps them per challenge.
:func:`ha1` is public so that account stores compute the same stored value
the server later hands back through ``lookup_ha1``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from types import MappingProxyType

from callscript.sip.abnf import Params, has_control, quote
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import Auth, parse_auth
from callscript.sip.message import Response

__all__ = [
    "ALGORITHMS",
    "base_algorithm",
    "canonical_algorithm",
    "digest_hex",
    "digest_response",
    "digest_size",
    "ha1",
    "make_nonce",
    "nonce_issued",
    "offered_qops",
    "parse_nc",
    "pick_challenge",
    "pick_challenges",
    "request_digest",
]

# RFC 8760 §2.1: the hash algorithms SIP digest uses, strongest first; hashlib names.
_HASH_NAMES = MappingProxyType({"SHA-512-256": "sha512_256", "SHA-256": "sha256", "MD5": "md5"})


def _available(hash_name: str) -> bool:
    # SHA-512/256 comes from OpenSSL; a build without it simply does not offer it.
    try:
        hashlib.new(hash_name)
    except ValueError:
        return False
    return True


_BASE = tuple(name for name, hash_name in _HASH_NAMES.items() if _available(hash_name))
# Every algorithm name this module computes, strongest hash first, each followed by its -sess.
ALGORITHMS: tuple[str, ...] = tuple(x for name in _BASE for x in (name, f"{name}-sess"))
_CANONICAL = MappingProxyType({name.upper(): name for name in ALGORITHMS})
# Higher is stronger; a -sess variant is as strong as its hash.
_STRENGTH = MappingProxyType(
    {name: len(_BASE) - _BASE.index(name.removesuffix("-sess")) for name in ALGORITHMS}
)
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
_QOPS = ("auth", "auth-int")
_STAMP = struct.Struct(">Q")  # nonce issue time, milliseconds since the epoch
_RANDOM_SIZE = 16
_MAC_SIZE = 32
_NONCE_SIZE = _STAMP.size + _RANDOM_SIZE + _MAC_SIZE


def canonical_algorithm(value: str | None) -> str | None:
    """The registered spelling of an ``algorithm`` value, or ``None`` when unsupported.

    RFC 2617 §3.2.1: an absent algorithm means MD5. Names compare case-insensitively.
    """
    if value is None:
        return "MD5" if "MD5" in _CANONICAL.values() else None
    return _CANONICAL.get(value.upper())


def base_algorithm(algorithm: str) -> str:
    """The hash behind ``algorithm``: ``SHA-256-sess`` -> ``SHA-256``."""
    return algorithm.removesuffix("-sess")


def digest_size(algorithm: str) -> int:
    """How many hex digits a digest of ``algorithm`` has (32 for MD5, 64 for the SHAs)."""
    return hashlib.new(_HASH_NAMES[base_algorithm(algorithm)]).digest_size * 2


def digest_hex(algorithm: str, data: str | bytes) -> str:
    """H(data): the lower-case hex digest of ``data`` (UTF-8 when a ``str``).

    Raises:
        LocalProtocolError: ``algorithm`` is not one of :data:`ALGORITHMS`.
    """
    if algorithm not in _CANONICAL.values():
        raise LocalProtocolError(f"unsupported digest algorithm {algorithm!r}")
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return hashlib.new(_HASH_NAMES[base_algorithm(algorithm)], raw).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """The stored secret H(A1) = H(username ":" realm ":" password) (RFC 2617 §3.2.2.2).

    For a ``-sess`` algorithm this is still the per-user value; the session
    key is derived from it per nonce and cnonce by :func:`request_digest`.
    """
    return digest_hex(algorithm, f"{username}:{realm}:{password}")


def request_digest(
    *,
    ha1: str,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value for credentials (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).

    Args:
        ha1: the stored H(username:realm:password), as :func:`ha1` returns it.
        method: the request method; ``""`` gives ``rspauth`` (Authentication-Info).
        qop: ``auth``, ``auth-int`` or ``None`` for the RFC 2069 form.
        nc: the nonce-count as sent (8 hex digits); required with ``qop``.

    Raises:
        LocalProtocolError: ``qop`` without ``nc``/``cnonce``, or a ``-sess``
            algorithm without ``cnonce``.
    """
    key = ha1
    if algorithm.endswith("-sess"):
        if cnonce is None:
            raise LocalProtocolError(f"{algorithm} needs a cnonce")
        key = digest_hex(algorithm, f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + digest_hex(algorithm, body)
    ha2 = digest_hex(algorithm, a2)
    if qop is None:
        # RFC 2617 §3.2.2.1: without qop the RFC 2069 form KD(H(A1), nonce:H(A2)).
        return digest_hex(algorithm, f"{key}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise LocalProtocolError("qop needs nc and cnonce")
    return digest_hex(algorithm, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def make_nonce(secret: bytes, realm: str, *, now: float, random: str) -> str:
    """A stateless nonce: base64url(time | random | HMAC-SHA256(secret, time | random | realm)).

    Args:
        now: wall-clock issue time, epoch seconds (kept to the millisecond).
        random: unguessable text from the IdSource; it is hashed to 16 bytes.
    """
    stamp = _STAMP.pack(max(0, int(now * 1000)))
    body = stamp + hashlib.sha256(random.encode("utf-8", "surrogateescape")).digest()[:_RANDOM_SIZE]
    return base64.urlsafe_b64encode(body + _nonce_mac(secret, realm, body)).rstrip(b"=").decode()


def nonce_issued(secret: bytes, realm: str, nonce: str) -> float | None:
    """The issue time :func:`make_nonce` put in ``nonce``, or ``None`` if its MAC is wrong."""
    if not nonce.isascii() or len(nonce) > 2 * _NONCE_SIZE:
        return None
    try:
        raw = base64.b64decode(nonce + "=" * (-len(nonce) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _NONCE_SIZE:
        return None
    # One spelling per nonce, so the nonce-count table cannot be dodged by re-encoding.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != nonce:
        return None
    body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
    if not hmac.compare_digest(mac, _nonce_mac(secret, realm, body)):
        return None
    return int(_STAMP.unpack_from(body)[0]) / 1000


def _nonce_mac(secret: bytes, realm: str, body: bytes) -> bytes:
    return hmac.new(
        secret, body + realm.encode("utf-8", "surrogateescape"), hashlib.sha256
    ).digest()


def parse_nc(text: str) -> int | None:
    """The value of an ``nc`` parameter (exactly 8 hex digits), or ``None``."""
    return int(text, 16) if _NC_RE.fullmatch(text) else None


def offered_qops(challenge: Auth) -> tuple[str, ...] | None:
    """The qop-options of a challenge, lower-cased; ``None`` when the challenge has none."""
    value = challenge.get("qop")
    if value is None:
        return None
    return tuple(part.strip(" \t").lower() for part in value.split(","))


def _answerable(challenge: Auth) -> str | None:
    """The canonical algorithm when we can answer ``challenge``, else ``None``."""
    if challenge.scheme.lower() != "digest":
        return None
    if challenge.get("realm") is None or not challenge.get("nonce"):
        return None
    algorithm = canonical_algorithm(challenge.get("algorithm"))
    if algorithm is None:
        return None
    qops = offered_qops(challenge)
    if qops is not None and not any(q in qops for q in _QOPS):
        return None
    if qops is None and algorithm.endswith("-sess"):
        # RFC 3261 §22.4: the -sess algorithms need the cnonce, sent only with qop.
        return None
    return algorithm


def pick_challenges(response: Response) -> list[Auth]:
    """One challenge per realm of a 401/407, the strongest supported one of each.

    Realms keep the order of their first challenge. Challenges that are not
    Digest, that are malformed, or that use an unknown algorithm are skipped;
    the topmost wins between equally strong ones.
    """
    return [challenge for _, challenge in _best_per_realm(response)]


def pick_challenge(response: Response) -> Auth | None:
    """The strongest supported Digest challenge of a 401/407 (SHA-512-256 > SHA-256 > MD5)."""
    ranked = _best_per_realm(response)
    if not ranked:
        return None
    return max(ranked, key=lambda pair: pair[0])[1]


def _best_per_realm(response: Response) -> list[tuple[int, Auth]]:
    if response.status not in (401, 407):
        return []
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    best: dict[str, tuple[int, Auth]] = {}
    for key, text in response.raw_headers():
        if key != name:
            continue
        try:
            challenge = parse_auth(text)
        except ParseError:
            continue
        # RFC 8760 §2.4: the UAC ignores challenges it does not support.
        algorithm = _answerable(challenge)
        if algorithm is None:
            continue
        realm = challenge.get("realm") or ""
        strength = _STRENGTH[algorithm]
        # RFC 3261 §22.3: challenges from several proxies (forking) each get credentials.
        if realm not in best or strength > best[realm][0]:
            best[realm] = (strength, challenge)
    return list(best.values())


def digest_response(
    challenge: Auth,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
    body: bytes = b"",
) -> Auth:
    """Credentials answering ``challenge``, for an Authorization or Proxy-Authorization header.

    qop ``auth`` is used when offered (``auth-int`` when only that is), else the
    RFC 2069 form without qop, nc and cnonce. The algorithm and opaque are
    echoed from the challenge.

    Args:
        uri: the Request-URI of the request being sent, as written.
        cnonce: a fresh unguessable string (``IdSource.token()``).
        nc: how many requests this nonce has signed, this one included (from 1).
        body: the message body (used only by ``auth-int``).

    Raises:
        ParseError: the peer's challenge cannot be answered (not Digest, no
            realm or nonce, unknown algorithm, no usable qop).
        LocalProtocolError: ``nc`` out of range, or control characters in the arguments.
    """
    algorithm = _answerable(challenge)
    if algorithm is None:
        raise ParseError(f"cannot answer challenge {str(challenge)[:60]!r}", text=str(challenge))
    if not 1 <= nc <= 0xFFFFFFFF:
        raise LocalProtocolError(f"nonce-count {nc} is not 1 to 0xffffffff")
    if any(has_control(x) for x in (method, uri, username, cnonce)):
        raise LocalProtocolError("control character in method, uri, username or cnonce")
    realm = challenge.get("realm") or ""
    nonce = challenge.get("nonce") or ""
    qops = offered_qops(challenge)
    qop = None if qops is None else ("auth" if "auth" in qops else "auth-int")
    nc_text = f"{nc:08x}"
    response = request_digest(
        ha1=ha1(username, realm, password, algorithm),
        algorithm=algorithm,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    params: list[tuple[str, str | None]] = [
        ("username", quote(username)),
        ("realm", quote(realm)),
        ("nonce", quote(nonce)),
        ("uri", quote(uri)),
        ("response", quote(response)),
    ]
    raw_algorithm = challenge.params.get("algorithm")
    if raw_algorithm is not None:
        params.append(("algorithm", raw_algorithm))
    if qop is not None:
        # RFC 3261 §22.4: a challenge with qop is answered with qop (and so nc and cnonce).
        params += [("qop", qop), ("nc", nc_text), ("cnonce", quote(cnonce))]
    opaque = challenge.params.get("opaque")
    if opaque is not None:
        params.append(("opaque", opaque))
    return Auth("Digest", Params(params))
