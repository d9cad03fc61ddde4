"""Who is calling the API: HTTP Digest with the SIP accounts, Basic over TLS, bearer tokens.

A subscriber signs in to the API with the same credentials as for SIP:

- **Digest** (RFC 7616): the stored H(A1) of ``username:realm:password`` is the same
  value the SIP registrar checks, so no other secret is kept. Nonces, algorithms
  (SHA-256, MD5), nonce counts and staleness are checked by the SIP stack's own
  :class:`~callscript.sip.auth.DigestServer`: the HTTP request is handed to it as a
  request with the same method and Authorization header (the credentials' syntax is
  the same in HTTP and SIP). The ``uri`` parameter must name the request's path.
- **Basic** (``alice@example.com`` and the password), and console sign-in, only over
  TLS, or from loopback when ``basic_on_loopback`` allows it (tests, a local console).
- **Bearer** tokens an admin issued, and console sessions: stored hashed.

Failed credentials are audited (``access:denied``) and counted per client
address; past ``logins_per_minute`` failures, sign-in attempts get 429.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from callscript.errors import CallscriptError
from callscript.sip import digest
from callscript.sip.auth import AuthStatus, DigestServer
from callscript.sip.errors import ParseError
from callscript.sip.headers import parse_auth
from callscript.sip.ids import RandomIds
from callscript.sip.message import Request
from callscript.store.base import Account
from callscript.web.config import is_loopback
from callscript.web.errors import ApiError
from callscript.web.services import SERVICES, WebServices

# A header that asks for no WWW-Authenticate challenge (the console's fetches):
# a browser shows its own sign-in dialog when it sees one.
CONSOLE_HEADER = "X-Callscript-Console"
_SHIM_URI = "sip:management-api.invalid"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user of the API."""

    username: str
    domain: str
    role: str
    method: str

    @property
    def name(self) -> str:
        """``alice@example.com``."""
        return f"{self.username}@{self.domain}"

    @property
    def is_admin(self) -> bool:
        """Whether the user has the admin role."""
        return self.role == "admin"


class Authenticator:
    """Checks the credentials of API requests (one per application)."""

    def __init__(self, services: WebServices) -> None:
        self.services = services
        secret = services.auth_secret or secrets.token_bytes(32)
        config = services.config
        self._digest = {
            realm: DigestServer(
                realm, secret, RandomIds(), nonce_ttl=config.nonce_ttl, check_uri=False
            )
            for realm in services.realms()
        }

    # -- entry points ------------------------------------------------------------

    def principal(self, request: web.Request) -> Principal:
        """The authenticated user of ``request``.

        Raises:
            ApiError: 401 (with challenges unless the console asked), or 429 after
                too many failures from this address.
        """
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._bearer(request, rest.strip())
        if scheme == "basic":
            return self._basic(request, rest.strip())
        if scheme == "digest":
            return self._digest_auth(request, header)
        raise self._unauthenticated(request, "credentials required")

    def admin(self, request: web.Request) -> Principal:
        """The authenticated admin of ``request``; 403 (audited) for anyone else."""
        who = self.principal(request)
        if not who.is_admin:
            raise self.denied(request, who, "admin role required")
        return who

    def password_login(self, request: web.Request, user: str, password: str) -> Principal:
        """Check a console sign-in (``alice@example.com`` and password)."""
        self._need_safe_channel(request, "sign-in")
        self._throttle(request)
        account = self.account_of(user)
        if account is None or not _password_ok(account, password):
            raise self._failed(request, user, "wrong user or password")
        return Principal(account.username, account.domain, account.role, "password")

    def denied(
        self, request: web.Request, who: Principal, reason: str, *, owner: str = ""
    ) -> ApiError:
        """Audit a refused access and return the 403 to raise."""
        self.services.record(
            "access:denied",
            f"{who.name} {request.method} {request.path}: {reason}",
            owner=owner or f"sip:{who.name}",
        )
        return ApiError(403, "forbidden", reason)

    def account_of(self, user: str) -> Account | None:
        """The account ``alice@example.com`` names, or ``None``."""
        username, at, domain = user.rpartition("@")
        if not at or not username or not domain:
            return None
        try:
            accounts = self.services.accounts.list(domain.lower())
        except CallscriptError:
            return None
        return next((a for a in accounts if a.username == username), None)

    # -- schemes -------------------------------------------------------------------

    def _bearer(self, request: web.Request, token: str) -> Principal:
        services = self.services
        info = services.tokens.lookup(token, now=services.now())
        account = None if info is None else self.account_of(f"{info.username}@{info.domain}")
        if info is None or account is None:
            raise self._failed(request, "", "unknown or expired token")
        return Principal(account.username, account.domain, account.role, info.kind)

    def _basic(self, request: web.Request, encoded: str) -> Principal:
        self._need_safe_channel(request, "Basic authentication")
        self._throttle(request)
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_credentials", "malformed Basic credentials") from None
        user, colon, password = text.partition(":")
        account = self.account_of(user) if colon else None
        if account is None or not _password_ok(account, password):
            raise self._failed(request, user, "wrong user or password")
        return Principal(account.username, account.domain, account.role, "basic")

    def _digest_auth(self, request: web.Request, header: str) -> Principal:
        self._throttle(request)
        try:
            credentials = parse_auth(header)
        except ParseError as exc:
            raise ApiError(
                400, "bad_credentials", f"malformed Digest credentials: {exc.reason}"
            ) from None
        realm = credentials.get("realm") or ""
        server = self._digest.get(realm)
        if server is None:
            raise self._unauthenticated(request, f"unknown realm {realm[:40]!r}")
        # RFC 7616 §3.4: the uri parameter is the request target; the digest covers it.
        if credentials.get("uri") not in (request.path_qs, str(request.url)):
            raise ApiError(400, "bad_credentials", "the Digest uri is not this request's")
        try:
            shim = Request(request.method, _SHIM_URI, headers=[("Authorization", header)])
        except (CallscriptError, ValueError):
            raise ApiError(400, "bad_credentials", "malformed Digest credentials") from None
        result = server.verify(shim, now=self.services.now(), lookup_ha1=self.services.accounts.ha1)
        username = result.username or credentials.get("username") or ""
        if result.status is AuthStatus.MALFORMED:
            raise ApiError(400, "bad_credentials", f"malformed Digest credentials: {result.reason}")
        if result.status is AuthStatus.STALE:
            raise self._unauthenticated(request, "stale nonce", stale=True)
        account = self.services.accounts.get(username, realm) if result.ok else None
        if account is None:
            raise self._failed(request, f"{username}@{realm}", "wrong user or password")
        return Principal(account.username, account.domain, account.role, "digest")

    # -- refusals --------------------------------------------------------------------

    def _need_safe_channel(self, request: web.Request, what: str) -> None:
        if request.secure:
            return
        if self.services.config.basic_on_loopback and is_loopback(request.remote or ""):
            return
        raise ApiError(403, "tls_required", f"{what} needs TLS: use Digest or a token instead")

    def _throttle(self, request: web.Request) -> None:
        config, services = self.services.config, self.services
        wait = services.limiter.wait(
            "login", request.remote or "", config.logins_per_minute, now=services.monotonic()
        )
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                "too many failed sign-ins from this address",
                headers={"Retry-After": str(int(wait))},
            )

    def _failed(self, request: web.Request, user: str, reason: str) -> ApiError:
        services = self.services
        services.limiter.take(
            "login",
            request.remote or "",
            services.config.logins_per_minute,
            now=services.monotonic(),
        )
        owner = f"sip:{user}" if "@" in user else ""
        services.record(
            "access:denied",
            f"{request.method} {request.path} from {request.remote}: {reason}"
            + (f" (user {user[:80]!r})" if user else ""),
            owner=owner,
        )
        return self._unauthenticated(request, reason)

    def _unauthenticated(
        self, request: web.Request, reason: str, *, stale: bool = False
    ) -> ApiError:
        headers: list[tuple[str, str]] = []
        if CONSOLE_HEADER not in request.headers:
            now = self.services.now()
            # RFC 7616 §3.3: one challenge per realm and algorithm, the preferred first.
            for server in self._digest.values():
                headers += [
                    ("WWW-Authenticate", str(c)) for c in server.challenges(now=now, stale=stale)
                ]
        return ApiError(401, "unauthenticated", reason, headers=headers)


def _password_ok(account: Account, password: str) -> bool:
    """Whether ``password`` gives the account's stored H(A1) (its strongest algorithm)."""
    if not account.algorithms:
        return False
    algorithm = min(account.algorithms, key=digest.ALGORITHMS.index)
    computed = digest.ha1(account.username, account.realm, password, algorithm)
    return hmac.compare_digest(computed.encode(), account.ha1[algorithm].lower().encode())


AUTH: web.AppKey[Authenticator] = web.AppKey("auth", Authenticator)


def authenticator(request: web.Request) -> Authenticator:
    """The application's authenticator."""
    return request.app[AUTH]


def services_of(request: web.Request) -> WebServices:
    """The application's services."""
    return request.app[SERVICES]
