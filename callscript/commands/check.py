"""Check user scripts against the sandbox policy, without running them.

Each FILE is compiled with the same checks the proxy applies before it installs
a script (size, nesting, names, attributes, imports, except clauses, literal
arguments of the API), under the rules of its domain: the name of the directory
the file is in (``user_scripts/example.com/alice.py`` -> example.com), or
``--domain``. Every problem prints as ``FILE:LINE:COL: message``; warnings as
``FILE:LINE:COL: warning: message``.

The policy is ``--policy``, else ``sandbox/policy.toml`` in the current
directory when it exists, else the built-in defaults.

Exit codes: 0 no problem (warnings allowed); 1 a script has a problem; 2 a file
cannot be read or the policy is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callscript.errors import ConfigError
from callscript.sandbox.compiler import check_script
from callscript.sandbox.policy import find_policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``FILE...``, ``--policy`` and ``--domain``."""
    parser.add_argument("files", metavar="FILE", nargs="+", help="a user script (.py)")
    parser.add_argument("--policy", metavar="PATH", help="the sandbox policy (TOML)")
    parser.add_argument(
        "--domain", help="apply this domain's rules (default: the file's directory name)"
    )


def run(args: argparse.Namespace) -> int:
    """Check every file; returns the exit code."""
    try:
        policy, _ = find_policy(args.policy)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            status = 2
            continue
        domain = args.domain or path.resolve().parent.name
        for problem in check_script(source, name, policy.for_domain(domain)):
            print(problem)
            if problem.severity == "error" and status == 0:
                status = 1
    return status
