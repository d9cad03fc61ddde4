"""The database schema as ordered migrations, in plain SQL.

Each :class:`Migration` moves the schema from ``version - 1`` to ``version``;
the table ``schema_version`` keeps one row per migration applied, so the
current version is its highest ``version``. Never edit a released migration:
append a new one (audit log, script versions and call log will come this way).

The SQL avoids SQLite-only syntax so that the same statements, or ones that
differ only in column types, serve PostgreSQL: ``DOUBLE PRECISION`` is an
8-byte float in both (SQLite gives it REAL affinity), ``BIGINT`` holds a
32-bit unsigned CSeq in both (INTEGER affinity in SQLite), text is ``TEXT``, and
lists (a binding's Path) are stored as JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: the statements that take it to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL
)"""

CURRENT_VERSION_QUERY = "SELECT MAX(version) FROM schema_version"
RECORD_VERSION = "INSERT INTO schema_version (version, description) VALUES (?, ?)"

_BINDINGS = """
CREATE TABLE bindings (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    contact_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    q DOUBLE PRECISION NOT NULL CHECK (q >= 0 AND q <= 1),
    expires_at DOUBLE PRECISION NOT NULL,
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL,
    received TEXT,
    path TEXT NOT NULL,
    instance_id TEXT,
    reg_id BIGINT,
    user_agent TEXT,
    PRIMARY KEY (aor, contact)
)"""

_ACCOUNTS = """
CREATE TABLE accounts (
    username TEXT NOT NULL,
    domain TEXT NOT NULL,
    realm TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (username, domain),
    UNIQUE (username, realm)
)"""

_ACCOUNT_HA1 = """
CREATE TABLE account_ha1 (
    username TEXT NOT NULL,
    domain TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    ha1 TEXT NOT NULL,
    PRIMARY KEY (username, domain, algorithm),
    FOREIGN KEY (username, domain) REFERENCES accounts (username, domain) ON DELETE CASCADE
)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "location bindings and digest accounts",
        (
            _BINDINGS,
            # Candidates for a contact are looked up by AOR and comparison key.
            "CREATE INDEX bindings_by_contact_key ON bindings (aor, contact_key)",
            "CREATE INDEX bindings_by_expiry ON bindings (expires_at)",
            "CREATE INDEX bindings_by_seq ON bindings (seq)",
            _ACCOUNTS,
            _ACCOUNT_HA1,
        ),
    ),
)

_AUDIT = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    owner TEXT NOT NULL,
    script TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER,
    message TEXT NOT NULL,
    call_id TEXT
)"""

MIGRATIONS += (
    Migration(
        2,
        "audit log of script loads, rejects, violations and quarantines",
        (
            _AUDIT,
            "CREATE INDEX audit_by_owner ON audit (owner, id)",
            "CREATE INDEX audit_by_kind ON audit (kind, id)",
        ),
    ),
)


_SCRIPT_VERSIONS = """
CREATE TABLE script_versions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    digest TEXT NOT NULL,
    source TEXT NOT NULL
)"""

_SCRIPT_LIVE = """
CREATE TABLE script_live (
    name TEXT PRIMARY KEY,
    version_id INTEGER NOT NULL REFERENCES script_versions (id),
    updated_at DOUBLE PRECISION NOT NULL
)"""

_CALL_LOG = """
CREATE TABLE call_log (
    id INTEGER PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    owner TEXT NOT NULL,
    call_id TEXT NOT NULL,
    method TEXT NOT NULL,
    direction TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    script TEXT NOT NULL,
    version TEXT NOT NULL,
    actions TEXT NOT NULL,
    status INTEGER,
    violation TEXT,
    duration DOUBLE PRECISION
)"""

# Bearer tokens of the management API: only a SHA-256 of each token is kept.
_API_TOKENS = """
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    domain TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('token', 'session')),
    label TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION
)"""

# Per-domain sandbox policy overrides an admin set through the API (JSON sections).
_POLICY_OVERRIDES = """
CREATE TABLE policy_overrides (
    domain TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    author TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)"""

MIGRATIONS += (
    Migration(
        3,
        "script versions, call log, API tokens and policy overrides (management API)",
        (
            _SCRIPT_VERSIONS,
            "CREATE INDEX script_versions_by_name ON script_versions (name, id)",
            _SCRIPT_LIVE,
            _CALL_LOG,
            "CREATE INDEX call_log_by_owner ON call_log (owner, id)",
            _API_TOKENS,
            "CREATE INDEX api_tokens_by_user ON api_tokens (username, domain)",
            _POLICY_OVERRIDES,
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
