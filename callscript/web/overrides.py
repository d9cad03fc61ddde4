"""Per-domain sandbox policy overrides that admins set through the API.

The policy file stays what an admin audits; overrides are stored in the
database (``policy_overrides``: domain -> partial sections as JSON) and laid
over it: for a domain with an override, its rules are the file's rules for
that domain with the override's keys changed. Every override goes through the
same checks as the file (:func:`callscript.sandbox.policy.policy_from_dict`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from callscript.errors import ConfigError
from callscript.sandbox.policy import SECTIONS, Policy, policy_from_dict
from callscript.store.base import StoreError
from callscript.store.sqlite_db import Database


class OverrideStore:
    """Overrides in the ``policy_overrides`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> dict[str, dict[str, Any]]:
        """Every override, by domain."""
        out: dict[str, dict[str, Any]] = {}
        for domain, rules in self._db.read("SELECT domain, rules FROM policy_overrides"):
            try:
                value = json.loads(str(rules))
            except ValueError as exc:
                raise StoreError(f"corrupt policy override for {domain!r}: {exc}") from exc
            if isinstance(value, dict):
                out[str(domain)] = value
        return out

    def put(self, domain: str, rules: Mapping[str, Any], *, author: str, now: float) -> None:
        """Store (replace) the override of ``domain``."""
        with self._db.write() as conn:
            conn.execute("DELETE FROM policy_overrides WHERE domain = ?", (domain,))
            conn.execute(
                "INSERT INTO policy_overrides (domain, rules, author, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (domain, json.dumps(rules, sort_keys=True), author, now),
            )

    def remove(self, domain: str) -> bool:
        """Delete the override of ``domain``; False when there was none."""
        with self._db.write() as conn:
            return conn.execute("DELETE FROM policy_overrides WHERE domain = ?", (domain,)) > 0


def normalise_domain(domain: str) -> str:
    """The key a domain's override is stored under (lower case, no trailing dot)."""
    return domain.lower().rstrip(".")


def apply_overrides(base: Policy, overrides: Mapping[str, Mapping[str, Any]]) -> Policy:
    """``base`` with each domain's override laid over that domain's rules.

    Raises:
        ConfigError: an override has an unknown key or a bad value (named ``domains.D.key``).
    """
    data: dict[str, Any] = {"workers": base.to_dict()["workers"]}
    data.update(base.base.to_dict())
    domains: dict[str, Any] = {name: rules.to_dict() for name, rules in base.domains.items()}
    for domain, override in overrides.items():
        if not isinstance(override, Mapping):
            raise ConfigError(f"override: domains.{domain}: must be an object of sections")
        rules = base.for_domain(domain).to_dict()
        for section, table in override.items():
            if section not in SECTIONS:
                raise ConfigError(f"override: domains.{domain}.{section}: unknown section")
            if not isinstance(table, Mapping):
                raise ConfigError(f"override: domains.{domain}.{section}: must be an object")
            rules[section] = {**rules[section], **table}
        domains[normalise_domain(domain)] = rules
    data["domains"] = domains
    return policy_from_dict(data, "override")
