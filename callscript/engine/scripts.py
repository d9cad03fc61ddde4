"""Which script handles a call: file names from request-URIs, and the registry of live versions.

File name rule (documented for subscribers and admins, README "Where scripts live"):

    sip:USER@DOMAIN  ->  <scripts_dir>/<domain>/<user>.py

- ``domain`` is the URI host, lower-cased, IPv6 brackets and colons percent-encoded;
- ``user`` is the user part as RFC 3261 §19.1.4 compares it: escapes decoded
  (``%41`` is ``A``), case kept; then every byte that is not an ASCII letter,
  digit, ``-``, ``_``, ``+``, ``=``, ``,``, ``!``, ``~`` or a non-leading ``.``
  is written as ``%XX`` (upper-case hex) of its UTF-8 bytes.

So no URI can name ``..``, a ``/`` or anything outside the scripts directory:
both parts are single path components made of a safe alphabet.

:func:`reload` is the pure step the watcher runs: ``(registry, name, source) ->
(registry, change)``; a version that fails to compile leaves the previous one live.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from callscript.sandbox.compiler import Problem, check_script
from callscript.sandbox.policy import Policy
from callscript.sip.abnf import unescape
from callscript.sip.uri import URI

_SAFE_USER = re.compile(r"[A-Za-z0-9\-_+=,!~.]")
_SAFE_DOMAIN = re.compile(r"[a-z0-9\-.]")


def _encode(text: str, safe: re.Pattern[str]) -> str:
    out: list[str] = []
    for index, ch in enumerate(text):
        if safe.fullmatch(ch) and not (ch == "." and index == 0):
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def script_name(uri: URI) -> str | None:
    """The script file name (``example.com/alice.py``) for a SIP or SIPS URI; ``None`` without a user."""
    if not uri.is_sip or not uri.user:
        return None
    domain = _encode(uri.host.lower(), _SAFE_DOMAIN)
    user = _encode(unescape(uri.user), _SAFE_USER)
    return f"{domain}/{user}.py"


def owner_of(name: str) -> str:
    """The address of record a script name belongs to (``sip:alice@example.com``)."""
    domain, _, file = name.partition("/")
    return f"sip:{unescape(file.removesuffix('.py'))}@{unescape(domain)}"


@dataclass(frozen=True, slots=True)
class ScriptVersion:
    """One live script version."""

    name: str
    domain: str
    source: str
    digest: str

    @property
    def version(self) -> str:
        """A short form of the content digest, as logs and the audit log show it."""
        return self.digest[:12]

    @property
    def owner(self) -> str:
        """The owner's address of record."""
        return owner_of(self.name)


@dataclass(frozen=True, slots=True)
class Change:
    """What :func:`reload` did: ``kind`` is load, reject, delete or none."""

    kind: str
    name: str
    version: str = ""
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Registry:
    """The live script of every user, by name. Immutable: :func:`reload` returns a new one."""

    scripts: Mapping[str, ScriptVersion] = field(default_factory=lambda: MappingProxyType({}))
    rejected: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str) -> ScriptVersion | None:
        """The live version of script ``name``."""
        return self.scripts.get(name)

    def __len__(self) -> int:
        return len(self.scripts)


def reload(
    registry: Registry, name: str, source: str | None, policy: Policy
) -> tuple[Registry, Change]:
    """The registry after script ``name`` changed to ``source`` (``None``: deleted).

    A source that does not compile under the domain's policy is rejected and the
    previous version stays live.
    """
    current = registry.get(name)
    if source is None:
        if current is None:
            return registry, Change("none", name)
        scripts = dict(registry.scripts)
        del scripts[name]
        return replace(registry, scripts=MappingProxyType(scripts)), Change(
            "delete", name, current.version
        )
    digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()
    if (current is not None and current.digest == digest) or registry.rejected.get(name) == digest:
        return registry, Change("none", name, digest[:12])
    domain = name.partition("/")[0]
    problems = tuple(
        p for p in check_script(source, name, policy.for_domain(domain)) if p.severity == "error"
    )
    rejected = dict(registry.rejected)
    if problems:
        rejected[name] = digest
        return replace(registry, rejected=MappingProxyType(rejected)), Change(
            "reject", name, digest[:12], problems
        )
    rejected.pop(name, None)
    version = ScriptVersion(name, domain, source, digest)
    scripts = dict(registry.scripts)
    scripts[name] = version
    registry = replace(
        registry, scripts=MappingProxyType(scripts), rejected=MappingProxyType(rejected)
    )
    return registry, Change("load", name, version.version)


def name_of_path(root: Path, path: Path) -> str | None:
    """The script name of a file under ``root`` (``<domain>/<user>.py``), else ``None``."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    parts = relative.parts
    if len(parts) != 2 or not parts[1].endswith(".py") or parts[1].startswith("."):
        return None
    return f"{parts[0]}/{parts[1]}"


def read_source(root: Path, name: str, *, max_size: int) -> str | None:
    """The source of script ``name``, or ``None`` when it is gone or unreadable as UTF-8."""
    path = root / name
    try:
        data = path.read_bytes()[: max_size + 1]
    except OSError:
        return None
    return data.decode("utf-8", "surrogateescape")


def scan(root: Path) -> list[str]:
    """Every script name under ``root``."""
    if not root.is_dir():
        return []
    names = []
    for domain in sorted(root.iterdir()):
        if domain.is_dir() and not domain.name.startswith("."):
            for file in sorted(domain.glob("*.py")):
                name = name_of_path(root, file)
                if name is not None:
                    names.append(name)
    return names
