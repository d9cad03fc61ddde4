"""Show the audit log: script loads, rejected versions, sandbox violations and quarantines.

Reads the same database as `callscript serve` (--db, or env CALLSCRIPT_DB, or ./callscript.db).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from callscript.store.audit import KINDS
from callscript.store.base import StoreError
from callscript.store.sqlite import SqliteStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callscript audit``."""
    parser.add_argument("--user", metavar="AOR", help="only this owner (sip:alice@example.com)")
    parser.add_argument("--kind", choices=KINDS, help="only this kind of entry")
    parser.add_argument("--limit", type=int, default=100, help="newest N entries (default 100)")
    parser.add_argument("--db", metavar="PATH", help="the database (default ./callscript.db)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    """Print the matching entries, newest first."""
    path = args.db or os.environ.get("CALLSCRIPT_DB") or "callscript.db"
    try:
        store = SqliteStore(path)
    except StoreError as exc:
        print(f"callscript audit: {exc}", file=sys.stderr)
        return 1
    try:
        entries = store.audit.entries(owner=args.user, kind=args.kind, limit=args.limit)
    finally:
        store.close()
    for entry in entries:
        when = datetime.datetime.fromtimestamp(entry.at, datetime.UTC).isoformat(timespec="seconds")
        if args.json:
            print(
                json.dumps(
                    {
                        "id": entry.id,
                        "time": when,
                        "owner": entry.owner,
                        "script": entry.script,
                        "version": entry.version,
                        "kind": entry.kind,
                        "line": entry.line,
                        "message": entry.message,
                        "call_id": entry.call_id,
                    }
                )
            )
        else:
            where = f"{entry.script}:{entry.line}" if entry.line else entry.script
            call = f" call {entry.call_id}" if entry.call_id else ""
            print(
                f"{when} {entry.kind} {entry.owner} {where} ({entry.version}){call}: {entry.message}"
            )
    return 0
