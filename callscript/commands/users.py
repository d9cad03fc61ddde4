"""Manage the accounts users authenticate with: add, remove, passwd, list.

Accounts live in the SQLite database given by ``--db``, else by the
environment variable CALLSCRIPT_DB, else ``callscript.db`` in the current
directory. Only digest H(A1) values are stored; no password and no H(A1)
is ever printed.

A password comes from ``--password`` (visible to other local users in the
process list: prefer the others), from the first line of standard input with
``--password-stdin``, or is asked for twice on the terminal.

Exit codes: 0 done; 1 the account exists, does not exist, or the password or
database was refused (one line on standard error says which); 2 usage.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from callscript.store import Account, SqliteStore, StoreError

DEFAULT_DB = "callscript.db"
DB_ENV = "CALLSCRIPT_DB"

Prompt = Callable[[str], str]


def user_at_domain(text: str) -> tuple[str, str]:
    """Split ``USER@DOMAIN``; an argparse ``type`` (a bad value is a usage error)."""
    user, at, domain = text.partition("@")
    if not at or not user or not domain or "@" in domain:
        raise argparse.ArgumentTypeError(f"expected USER@DOMAIN, got {text!r}")
    return user, domain.lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``add``, ``remove``, ``passwd`` and ``list`` actions and their options."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", metavar="PATH", help=f"database file (default: ${DB_ENV} or ./{DEFAULT_DB})"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = sub.add_parser("add", parents=[common], help="create an account")
    _user_argument(add)
    _password_options(add)
    add.add_argument("--realm", help="digest realm (default: the domain)")
    add.add_argument("--admin", action="store_true", help="give the account the admin role")

    remove = sub.add_parser("remove", parents=[common], help="delete an account")
    _user_argument(remove)

    passwd = sub.add_parser("passwd", parents=[common], help="change an account's password")
    _user_argument(passwd)
    _password_options(passwd)

    listing = sub.add_parser("list", parents=[common], help="show accounts (never secrets)")
    listing.add_argument("--domain", metavar="D", help="only the accounts of domain D")
    listing.add_argument("--json", action="store_true", help="print a JSON array")


def _user_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", metavar="USER@DOMAIN", type=user_at_domain, help="the account")


def _password_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--password", metavar="P", help="the password (visible in ps: avoid)")
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out ``args.action``; returns the exit code (0, 1 or 2)."""
    return run_with(args, stdin=sys.stdin, prompt=getpass.getpass, now=time.time(), env=os.environ)


def run_with(
    args: argparse.Namespace,
    *,
    stdin: TextIO,
    prompt: Prompt,
    now: float,
    env: Mapping[str, str],
) -> int:
    """:func:`run` with its terminal, clock and environment passed in."""
    path = args.db or env.get(DB_ENV) or DEFAULT_DB
    try:
        with SqliteStore(path) as store:
            if args.action == "list":
                return _list(store.accounts.list(args.domain), as_json=args.json)
            username, domain = args.user
            if args.action == "remove":
                store.accounts.remove(username, domain)
                print(f"removed {username}@{domain}")
                return 0
            password = _password(args, stdin, prompt, f"{username}@{domain}")
            if password is None:
                return 2
            if args.action == "passwd":
                store.accounts.set_password(username, domain, password)
                print(f"changed the password of {username}@{domain}")
                return 0
            account = store.accounts.add(
                username,
                domain,
                password,
                realm=args.realm,
                role="admin" if args.admin else "user",
                now=now,
            )
            print(f"added {_describe(account)}")
            return 0
    except (StoreError, _PasswordRefused) as exc:
        print(f"callscript users: {exc}", file=sys.stderr)
        return 1


class _PasswordRefused(Exception):
    """The password could not be read, or the two entries differ."""


def _password(args: argparse.Namespace, stdin: TextIO, prompt: Prompt, who: str) -> str | None:
    """The new password, or ``None`` (after a usage message) when there is no way to get one."""
    if args.password is not None:
        return str(args.password)
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    if not stdin.isatty():
        print(
            "callscript users: no password: use --password, --password-stdin or a terminal",
            file=sys.stderr,
        )
        return None
    try:
        first = prompt(f"Password for {who}: ")
        second = prompt("Repeat the password: ")
    except (EOFError, KeyboardInterrupt):
        raise _PasswordRefused("no password entered") from None
    if first != second:
        raise _PasswordRefused("the passwords do not match")
    return first


def _describe(account: Account) -> str:
    return f"{account.username}@{account.domain} (realm {account.realm!r}, {account.role})"


def _list(accounts: list[Account], *, as_json: bool) -> int:
    if as_json:
        rows = [
            {
                "username": a.username,
                "domain": a.domain,
                "realm": a.realm,
                "role": a.role,
                "created_at": a.created_at,
                "algorithms": list(a.algorithms),
            }
            for a in accounts
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for a in accounts:
        created = datetime.datetime.fromtimestamp(a.created_at, datetime.UTC)
        print(
            f"{a.username}@{a.domain}\trealm={a.realm}\trole={a.role}"
            f"\tcreated={created:%Y-%m-%dT%H:%M:%SZ}"
        )
    return 0
