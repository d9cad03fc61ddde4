"""Print the effective sandbox policy (the limits and allow-lists user scripts run under).

The policy is ``--policy``, else ``sandbox/policy.toml`` in the current
directory when it exists, else the built-in defaults. Without ``--domain`` it
prints the base rules and every per-domain override; with ``--domain D`` the
rules that apply to D's scripts. ``--json`` prints one JSON object.

Exit codes: 0 printed; 2 the policy file cannot be read or is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys

from callscript.errors import ConfigError
from callscript.sandbox.policy import SECTIONS, find_policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--policy``, ``--domain`` and ``--json``."""
    parser.add_argument("--policy", metavar="PATH", help="the sandbox policy (TOML)")
    parser.add_argument("--domain", help="print the rules that apply to this domain")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Print the policy; returns the exit code."""
    try:
        policy, where = find_policy(args.policy)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    full = policy.to_dict()
    if args.domain:
        view: dict[str, object] = {
            "workers": full["workers"],
            **policy.for_domain(args.domain).to_dict(),
        }
    else:
        view = full
    if args.json:
        print(
            json.dumps(
                {"source": where, **({"domain": args.domain} if args.domain else {}), **view},
                indent=2,
            )
        )
        return 0
    print(f"# sandbox policy from {where}" + (f", rules for {args.domain}" if args.domain else ""))
    for section in ("workers", *SECTIONS):
        _print_table(section, view[section])  # type: ignore[arg-type]
    domains = view.get("domains") or {}
    base = policy.base.to_dict()
    for domain, rules in domains.items():  # type: ignore[attr-defined]
        for section in SECTIONS:
            changed = {k: v for k, v in rules[section].items() if base[section][k] != v}
            if changed:
                _print_table(f'domains."{domain}".{section}', changed)
    return 0


def _print_table(name: str, table: dict[str, object]) -> None:
    print(f"\n[{name}]")
    for key, value in table.items():
        print(f"{key} = {json.dumps(value)}")
