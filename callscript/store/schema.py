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

SCHEMA_VERSION = MIGRATIONS[-1].version
