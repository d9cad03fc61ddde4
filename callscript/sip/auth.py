"""Digest authentication for a registrar, UAS or proxy: challenge and verify.

RFC 3261 §22.1-§22.4 (framework, 401 and 407, Digest in SIP), §8.2.6.2 (the
challenge response), §20.7, §20.27, §20.28, §20.44 (the four headers),
RFC 2617 §3.2 (qop=auth, nonce-count, cnonce, stale), RFC 7616 §3.3-§3.5 and
RFC 8760 §2 (SHA-256 and SHA-512-256, one challenge per algorithm).

Nonces are stateless (:func:`~callscript.sip.digest.make_nonce`):
``base64url(time | random | HMAC-SHA256(secret, time | random | realm))``, so
every node that shares ``secret`` accepts the nonces of the others, across
restarts. The only state is the highest nonce-count seen per nonce (replay
protection), in a bounded table owned by the :class:`DigestServer`; when the
table is full the least recently used nonce goes, and every nonce issued no
later than an evicted one is answered ``STALE`` from then on, so eviction can
never reopen a replay. The table is per instance: nodes do not share counts.

The client side (:func:`digest_response`, :func:`pick_challenge`) and the
hash helpers (:func:`ha1`) live in :mod:`callscript.sip.digest` and are
re-exported here.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from callscript.sip.abnf import Params, has_control, is_token, quote
from callscript.sip.digest import (
    ALGORITHMS,
    base_algorithm,
    canonical_algorithm,
    digest_response,
    digest_size,
    ha1,
    make_nonce,
    nonce_issued,
    parse_nc,
    pick_challenge,
    pick_challenges,
    request_digest,
)
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.headers import Auth, parse_auth
from callscript.sip.ids import IdSource
from callscript.sip.message import Request, Response
from callscript.sip.uri import parse_uri

__all__ = [
    "AuthResult",
    "AuthStatus",
    "DigestServer",
    "LookupHA1",
    "digest_response",
    "ha1",
    "pick_challenge",
    "pick_challenges",
]

LookupHA1 = Callable[[str, str, str], str | None]
"""``lookup_ha1(username, realm, algorithm)`` -> stored H(A1) hex, or ``None``.

``algorithm`` is the hash (``MD5``, ``SHA-256``, ``SHA-512-256``), never a ``-sess`` name.
"""

_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
# Recorded as the nonce-count of a nonce used without qop: no later count can exceed it.
_SPENT = 1 << 32
_MIN_SECRET = 16


class AuthStatus(Enum):
    """What :meth:`DigestServer.verify` concluded."""

    OK = "ok"
    """Valid, fresh credentials for a known user."""
    MISSING = "missing"
    """No Digest credentials for our realm: challenge."""
    STALE = "stale"
    """Right password but an expired or spent nonce: challenge with ``stale=TRUE``."""
    FAILED = "failed"
    """Wrong password, unknown user, forged nonce or an algorithm we do not offer."""
    MALFORMED = "malformed"
    """Credentials that break the syntax, or name another URI: answer 400."""


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of :meth:`DigestServer.verify`; ``reason`` is for logs, not for peers."""

    status: AuthStatus
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the request is authenticated."""
        return self.status is AuthStatus.OK


def _result(status: AuthStatus, reason: str, username: str | None = None) -> AuthResult:
    return AuthResult(status, username, reason)


class DigestServer:
    """Challenges requests and verifies their Digest credentials for one realm.

    Every ``now`` here is wall-clock time (epoch seconds, ``time.time()``), not
    the loop's monotonic clock: nonces carry it, and other nodes and later
    processes must read the same clock to judge their age.

    Args:
        realm: the protection domain (usually the SIP domain).
        secret: key of the nonce HMAC, shared by every node of the realm (16+ bytes).
        ids: where the random part of nonces and the To tags of challenges come from.
        nonce_ttl: seconds a nonce stays fresh; older ones get ``STALE``.
        algorithms: offered algorithms; challenges list them strongest first.
        max_tracked_nonces: size of the nonce-count table (replay protection).
        opaque: an ``opaque`` value to send, and to require back, or ``None``.
        check_uri: require the ``uri`` parameter to equal the Request-URI.

    Raises:
        LocalProtocolError: a bad realm, a short secret, an unknown algorithm.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        ids: IdSource,
        *,
        nonce_ttl: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_tracked_nonces: int = 100_000,
        opaque: str | None = None,
        check_uri: bool = True,
    ) -> None:
        if not realm or has_control(realm) or (opaque is not None and has_control(opaque)):
            raise LocalProtocolError("realm must be non-empty; realm and opaque without controls")
        if len(secret) < _MIN_SECRET:
            raise LocalProtocolError(f"the nonce secret needs at least {_MIN_SECRET} bytes")
        if nonce_ttl <= 0 or max_tracked_nonces < 1 or not algorithms:
            raise LocalProtocolError("nonce_ttl, max_tracked_nonces and algorithms must be > 0")
        unknown = [name for name in algorithms if name not in ALGORITHMS]
        if unknown:
            raise LocalProtocolError(f"unsupported algorithms {unknown} (known: {ALGORITHMS})")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.opaque = opaque
        self.check_uri = check_uri
        # RFC 8760 §2.3: one challenge per algorithm, the preferred (strongest) first.
        self.algorithms = tuple(sorted(dict.fromkeys(algorithms), key=ALGORITHMS.index))
        self._secret = secret
        self._ids = ids
        self._max_tracked = max_tracked_nonces
        # nonce -> (highest nonce-count accepted, issue time); oldest use first.
        self._seen: dict[str, tuple[int, float]] = {}
        # Nonces issued at or before this time may have left the table: never trust them again.
        self._forgotten_until = float("-inf")

    # -- nonces ---------------------------------------------------------------

    def new_nonce(self, *, now: float) -> str:
        """A fresh nonce: issue time, a random part and their HMAC (see :func:`make_nonce`)."""
        return make_nonce(self._secret, self.realm, now=now, random=self._ids.token(16))

    def nonce_issued(self, nonce: str) -> float | None:
        """When we (or a node sharing our secret) issued ``nonce``; ``None`` if nobody did."""
        return nonce_issued(self._secret, self.realm, nonce)

    # -- challenges ---------------------------------------------------------------

    def challenges(self, *, now: float, stale: bool = False) -> list[Auth]:
        """The challenge values to send, one per algorithm, strongest first, one shared nonce."""
        nonce = self.new_nonce(now=now)
        out = []
        for algorithm in self.algorithms:
            params: list[tuple[str, str | None]] = [
                ("realm", quote(self.realm)),
                ("nonce", quote(nonce)),
            ]
            if self.opaque is not None:
                params.append(("opaque", quote(self.opaque)))
            # RFC 3261 §22.4: servers always send qop (RFC 2069 clients still answer without).
            params += [("algorithm", algorithm), ("qop", '"auth"')]
            if stale:
                # RFC 2617 §3.2.1: stale=TRUE lets the client retry without asking its user.
                params.append(("stale", "TRUE"))
            out.append(Auth("Digest", Params(params)))
        return out

    def challenge(
        self, request: Request, *, now: float, proxy: bool = False, stale: bool = False
    ) -> Response:
        """A 401 with WWW-Authenticate, or (``proxy``) a 407 with Proxy-Authenticate.

        Raises:
            ParseError: the request lacks a valid Via, From, To, Call-ID or CSeq.
        """
        if proxy:
            # RFC 3261 §22.3: a proxy challenges with 407 and Proxy-Authenticate.
            response = Response(407, "Proxy Authentication Required")
            header = "Proxy-Authenticate"
        else:
            # RFC 3261 §22.2: a UAS or registrar challenges with 401 and WWW-Authenticate.
            response = Response(401, "Unauthorized")
            header = "WWW-Authenticate"
        # RFC 3261 §8.2.6.2: Via (in order), From, Call-ID and CSeq are copied; To gets a tag.
        for via in request.via:
            response.add("Via", via)
        if not response.get_all("Via"):
            raise ParseError("missing Via header")
        response["From"] = request.from_addr
        to = request.to_addr
        response["To"] = to if to.tag is not None else to.with_params(tag=self._ids.tag())
        response["Call-ID"] = request.call_id
        response["CSeq"] = request.cseq
        for value in self.challenges(now=now, stale=stale):
            response.add(header, value)
        response["Content-Length"] = 0
        return response

    # -- verification ---------------------------------------------------------------

    def verify(
        self,
        request: Request,
        *,
        now: float,
        lookup_ha1: LookupHA1,
        proxy: bool = False,
    ) -> AuthResult:
        """Check the Authorization (or, ``proxy``, Proxy-Authorization) credentials for our realm.

        Never raises on what the peer sent; a successful check records the
        nonce-count, so the same credentials are not accepted twice.
        """
        found = self._credentials(request, proxy)
        if isinstance(found, AuthResult):
            return found
        return self._check(found, request, now=now, lookup_ha1=lookup_ha1)

    def _credentials(self, request: Request, proxy: bool) -> Auth | AuthResult:
        name = "Proxy-Authorization" if proxy else "Authorization"
        broken = ""
        for key, text in request.raw_headers():
            if key != name:
                continue
            scheme = text.strip(" \t").partition(" ")[0]
            if not is_token(scheme):
                broken = broken or f"{name} without an auth scheme"
                continue
            # RFC 3261 §22.1: Basic (or any other scheme) is never accepted.
            if scheme.lower() != "digest":
                continue
            try:
                credentials = parse_auth(text)
            except ParseError as exc:
                broken = broken or f"malformed {name}: {exc.reason}"
                continue
            realm = credentials.get("realm")
            if realm is None:
                broken = broken or f"{name} without realm"
            # RFC 3261 §22.3: each server reads only the credentials for its own realm.
            elif realm == self.realm:
                return credentials
        if broken:
            return _result(AuthStatus.MALFORMED, broken)
        return _result(AuthStatus.MISSING, f"no Digest {name} for realm {self.realm!r}")

    def _check(
        self, credentials: Auth, request: Request, *, now: float, lookup_ha1: LookupHA1
    ) -> AuthResult:
        malformed, failed = AuthStatus.MALFORMED, AuthStatus.FAILED
        username = credentials.get("username")
        nonce = credentials.get("nonce")
        uri = credentials.get("uri")
        response = credentials.get("response")
        if username is None or nonce is None or uri is None or response is None:
            return _result(malformed, "username, nonce, uri and response are required", username)
        algorithm = canonical_algorithm(credentials.get("algorithm"))
        if algorithm is None or algorithm not in self.algorithms:
            offered = credentials.get("algorithm") or "MD5"
            return _result(failed, f"algorithm {offered[:20]!r} not offered", username)
        qop = credentials.get("qop")
        nc_text, cnonce = credentials.get("nc"), credentials.get("cnonce")
        nc = 0
        if qop is not None:
            qop = qop.lower()
            if qop != "auth":
                return _result(failed, f"qop {qop[:20]!r} not offered", username)
            if nc_text is None or not cnonce:
                # RFC 2617 §3.2.2: qop comes with nc and cnonce.
                return _result(malformed, "qop=auth without nc or cnonce", username)
            parsed_nc = parse_nc(nc_text)
            if parsed_nc is None:
                return _result(malformed, "nc is not 8 hex digits", username)
            nc = parsed_nc
        elif algorithm.endswith("-sess"):
            return _result(malformed, f"{algorithm} without qop", username)
        if _HEX_RE.fullmatch(response) is None or len(response) != digest_size(algorithm):
            size = digest_size(algorithm)
            return _result(malformed, f"response is not {size} hex digits", username)
        # RFC 2617 §3.2.2.5: the uri parameter names the Request-URI, else 400.
        if self.check_uri and not _same_uri(uri, request):
            return _result(malformed, "uri parameter is not the Request-URI", username)
        if self.opaque is not None and credentials.get("opaque") != self.opaque:
            return _result(failed, "opaque not returned unchanged", username)
        issued = self.nonce_issued(nonce)
        if issued is None:
            return _result(failed, "nonce not issued by this realm", username)
        stored = lookup_ha1(username, self.realm, base_algorithm(algorithm))
        if stored is None:
            return _result(failed, "unknown user", username)
        expected = request_digest(
            ha1=stored.lower(),
            algorithm=algorithm,
            method=request.method,
            uri=uri,
            nonce=nonce,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
        )
        if not hmac.compare_digest(expected.encode(), response.lower().encode()):
            return _result(failed, "wrong response (password)", username)
        # RFC 2617 §3.2.1: stale only once the digest proved the password right.
        if now - issued > self.nonce_ttl:
            return _result(AuthStatus.STALE, "nonce expired", username)
        return self._count(nonce, issued, nc if qop is not None else None, username)

    def _count(self, nonce: str, issued: float, nc: int | None, username: str) -> AuthResult:
        seen = self._seen.pop(nonce, None)
        if seen is None and issued <= self._forgotten_until:
            return _result(AuthStatus.STALE, "nonce no longer tracked", username)
        last = 0 if seen is None else seen[0]
        if nc is None:
            # RFC 2617 §3.2.2: without qop there is no count, so a nonce serves once.
            if seen is not None:
                self._seen[nonce] = seen
                return _result(AuthStatus.STALE, "nonce already used without qop", username)
            nc = _SPENT
        # RFC 2617 §3.2.2: the same nc seen twice is a replay; counts only go up.
        elif nc <= last:
            if seen is not None:
                self._seen[nonce] = seen
            return _result(AuthStatus.STALE, f"nonce-count {nc} replayed", username)
        self._seen[nonce] = (nc, issued)
        while len(self._seen) > self._max_tracked:
            oldest = next(iter(self._seen))
            _, oldest_issued = self._seen.pop(oldest)
            self._forgotten_until = max(self._forgotten_until, oldest_issued)
        return _result(AuthStatus.OK, "", username)

    def authentication_info(
        self, request: Request, *, now: float, lookup_ha1: LookupHA1, proxy: bool = False
    ) -> str | None:
        """An Authentication-Info value for the response to a request :meth:`verify` accepted.

        It carries ``nextnonce`` and, when the client used qop, ``rspauth`` so
        the client can authenticate us (RFC 2617 §3.2.3). ``None`` when the
        request has no usable credentials of our realm.
        """
        credentials = self._credentials(request, proxy)
        if isinstance(credentials, AuthResult):
            return None
        nextnonce = f"nextnonce={quote(self.new_nonce(now=now))}"
        username, nonce = credentials.get("username"), credentials.get("nonce")
        uri, qop = credentials.get("uri"), credentials.get("qop")
        nc, cnonce = credentials.get("nc"), credentials.get("cnonce")
        algorithm = canonical_algorithm(credentials.get("algorithm"))
        if username is None or nonce is None or uri is None or nc is None or cnonce is None:
            return nextnonce
        if algorithm is None or qop is None or qop.lower() != "auth" or parse_nc(nc) is None:
            return nextnonce
        stored = lookup_ha1(username, self.realm, base_algorithm(algorithm))
        if stored is None:
            return nextnonce
        # RFC 2617 §3.2.3: rspauth is the request-digest with an empty method.
        rspauth = request_digest(
            ha1=stored.lower(),
            algorithm=algorithm,
            method="",
            uri=uri,
            nonce=nonce,
            qop="auth",
            nc=nc,
            cnonce=cnonce,
        )
        return f"{nextnonce}, qop=auth, rspauth={quote(rspauth)}, cnonce={quote(cnonce)}, nc={nc}"


def _same_uri(text: str, request: Request) -> bool:
    """RFC 3261 §19.1.4 equality of the ``uri`` parameter and the Request-URI."""
    try:
        return parse_uri(text) == request.uri
    except ParseError:
        return False
