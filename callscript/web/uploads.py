"""Putting a script live: check it, write it atomically where the server reads it, reload.

The live source of ``sip:alice@example.com`` is ``<scripts_dir>/example.com/alice.py``
(:func:`callscript.engine.scripts.script_name`). It is written to a hidden
temporary file in the same folder and renamed over the old one (``os.replace``),
so the script host's watcher, or a reader, sees the old file or the new one,
never half of one; the watcher ignores names that start with a dot.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from callscript.engine.scripthost import ScriptHost
from callscript.engine.scripts import script_name
from callscript.sandbox.compiler import Problem, check_script
from callscript.sandbox.policy import Policy
from callscript.sip.errors import ParseError
from callscript.sip.uri import URI, parse_uri


@dataclass(frozen=True, slots=True)
class ScriptRef:
    """Whose script a request is about: the account's name, AOR, domain and file name."""

    user: str
    aor: str
    domain: str
    name: str


def script_ref(username: str, domain: str) -> ScriptRef | None:
    """The script of account ``username@domain``; ``None`` when no SIP URI names it."""
    try:
        uri: URI = parse_uri(f"sip:{_escape_user(username)}@{domain}")
    except ParseError:
        return None
    name = script_name(uri)
    if name is None:
        return None
    return ScriptRef(f"{username}@{domain}", uri.aor, domain.lower(), name)


def _escape_user(username: str) -> str:
    # RFC 3261 §25.1: characters outside unreserved / user-unreserved go %-escaped.
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/")
    return "".join(
        ch if ch in safe else "".join(f"%{b:02X}" for b in ch.encode()) for ch in username
    )


def problems_of(source: str, ref: ScriptRef, policy: Policy) -> tuple[Problem, ...]:
    """Every problem (errors and warnings) of ``source`` under the owner's domain rules."""
    return check_script(source, ref.name, policy.for_domain(ref.domain))


def errors(problems: tuple[Problem, ...]) -> tuple[Problem, ...]:
    """The problems that refuse a script."""
    return tuple(p for p in problems if p.severity == "error")


def problem_text(problem: Problem) -> str:
    """``line:col: message`` (a warning says so)."""
    prefix = "warning: " if problem.severity == "warning" else ""
    return f"{problem.line}:{problem.col}: {prefix}{problem.message}"


def problem_dict(problem: Problem) -> dict[str, object]:
    """A problem as JSON-able values."""
    return {
        "line": problem.line,
        "col": problem.col,
        "severity": problem.severity,
        "message": problem.message,
    }


def write_live(root: Path, name: str, source: str) -> Path:
    """Write ``source`` as script ``name`` under ``root`` atomically; returns the path.

    Raises:
        OSError: the folder or file cannot be written.
    """
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
            out.write(source)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return path


def remove_live(root: Path, name: str) -> bool:
    """Delete script ``name``'s file; False when there was none."""
    try:
        (root / name).unlink()
    except FileNotFoundError:
        return False
    return True


def reload_now(host: ScriptHost | None, name: str) -> None:
    """Have the running host re-read ``name`` at once (its watcher would, a moment later)."""
    if host is not None:
        host.apply(name)
