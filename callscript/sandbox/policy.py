"""The sandbox policy: what a user's script may use and how much it may spend.

The policy is a TOML file an administrator audits (``sandbox/policy.toml``, each
knob commented in ``sandbox/README.md``). It loads into frozen dataclasses:

    Policy
      workers: WorkerRules          pool-wide (number of processes, memory each)
      base: DomainPolicy            the rules every domain gets
        script  ScriptRules         size, nesting, builtins, importable modules
        api     ApiRules            API names and actions, hidden headers, text caps
        limits  Limits              CPU per step, wall time per event, recursion
        targets TargetRules         where a script may send a call, and how often
        failure FailureRules        what happens to a call when its script fails
        quarantine QuarantineRules  how many failures in a window quarantine a script
      domains: {domain: DomainPolicy}   ``[domains."example.com".<section>]`` overrides

Every value is checked when loaded: unknown keys, wrong types (a bool is not an
int) and values out of range raise :class:`ConfigError` naming ``file: key``.
``DomainPolicy.to_dict()`` and :func:`domain_policy_from_dict` carry a domain's rules
to a worker process as JSON, through the same checks.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callscript.errors import ConfigError

# The builtins a script may be given; the policy picks from these only. Each is a
# plain value operation: no introspection, I/O, code loading or namespace access.
SAFE_BUILTINS = frozenset(
    {
        "abs", "all", "any", "ascii", "bin", "bool", "callable", "chr", "dict", "divmod",
        "enumerate", "filter", "float", "frozenset", "getattr", "hasattr", "hex", "int",
        "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct",
        "ord", "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str",
        "sum", "tuple", "zip",
        "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError",
        "KeyError", "LookupError", "MemoryError", "NotImplementedError", "OverflowError",
        "RecursionError", "RuntimeError", "StopIteration", "TypeError", "ValueError",
        "ZeroDivisionError",
    }
)  # fmt: skip
# Modules a policy may allow: pure computation, no clock, randomness or I/O (a
# handler step must be a pure function of its inputs to replay).
SAFE_MODULES = frozenset({"math", "re"})
API_NAMES = ("basic", "URI", "log")
ACTIONS = ("proxy", "redirect", "reject", "accept", "voicemail", "default")
FALLBACKS = ("default", "voicemail", "reject")


def _range(low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    return {"min": low, "max": high}


@dataclass(frozen=True, slots=True)
class ScriptRules:
    """What a script's source may be and use."""

    max_size: int = field(default=65536, metadata=_range(64, 1 << 22))
    max_nesting: int = field(default=100, metadata=_range(10, 400))
    builtins: tuple[str, ...] = tuple(sorted(SAFE_BUILTINS))
    modules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiRules:
    """The API surface and the caps on text a script hands back."""

    names: tuple[str, ...] = API_NAMES
    actions: tuple[str, ...] = ACTIONS
    hidden_headers: tuple[str, ...] = ("Authorization", "Proxy-Authorization")
    max_log_lines: int = field(default=50, metadata=_range(0, 10000))
    max_log_length: int = field(default=500, metadata=_range(16, 65536))
    max_reason_length: int = field(default=128, metadata=_range(8, 1024))
    max_uri_length: int = field(default=256, metadata=_range(32, 4096))


@dataclass(frozen=True, slots=True)
class Limits:
    """Time and depth a handler step may spend."""

    cpu_per_step: float = field(default=0.25, metadata=_range(0.001, 60))
    wall_per_event: float = field(default=2.0, metadata=_range(0.01, 600))
    max_recursion: int = field(default=200, metadata=_range(20, 5000))


@dataclass(frozen=True, slots=True)
class TargetRules:
    """Where a script may send a call (no open relay) and how often."""

    max_targets: int = field(default=8, metadata=_range(1, 100))
    max_proxies: int = field(default=5, metadata=_range(1, 100))
    default_timeout: float = field(default=30, metadata=_range(1, 3600))
    max_timeout: float = field(default=120, metadata=_range(1, 3600))
    domains: tuple[str, ...] = ()
    allow_served_domains: bool = True
    allow_contacts: bool = True
    allow_private: bool = False
    redirect_anywhere: bool = True


@dataclass(frozen=True, slots=True)
class FailureRules:
    """What a call gets when its script fails: ``default``, ``voicemail`` or ``reject:CODE``."""

    fallback: str = "default"

    @property
    def action(self) -> dict[str, object]:
        """The fallback as an action value (``{"kind": "reject", "code": 500}``...)."""
        kind, _, code = self.fallback.partition(":")
        if kind == "reject":
            return {"kind": "reject", "code": int(code or 500), "reason": None}
        return {"kind": kind}


@dataclass(frozen=True, slots=True)
class QuarantineRules:
    """``violations`` failures (timeout, memory, crash) within ``window`` seconds stop a
    script for ``duration`` seconds: its calls get the fallback without running it."""

    violations: int = field(default=5, metadata=_range(1, 100000))
    window: float = field(default=600, metadata=_range(1, 86400 * 7))
    duration: float = field(default=900, metadata=_range(0, 86400 * 7))


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    """The rules for the scripts of one domain (the base rules plus its overrides)."""

    script: ScriptRules = ScriptRules()
    api: ApiRules = ApiRules()
    limits: Limits = Limits()
    targets: TargetRules = TargetRules()
    failure: FailureRules = FailureRules()
    quarantine: QuarantineRules = QuarantineRules()

    def to_dict(self) -> dict[str, dict[str, object]]:
        """Plain JSON-able values, section by section."""
        return {name: _section_dict(getattr(self, name)) for name in SECTIONS}


@dataclass(frozen=True, slots=True)
class WorkerRules:
    """The worker processes: how many, and the memory each may map."""

    count: int = field(default=2, metadata=_range(1, 256))
    memory_mb: int = field(default=256, metadata=_range(32, 65536))
    cache_scripts: int = field(default=256, metadata=_range(1, 100000))


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole policy: worker rules, base domain rules and per-domain overrides."""

    workers: WorkerRules = WorkerRules()
    base: DomainPolicy = DomainPolicy()
    domains: Mapping[str, DomainPolicy] = field(default_factory=lambda: types.MappingProxyType({}))

    def for_domain(self, domain: str) -> DomainPolicy:
        """The effective rules for ``domain`` (case-insensitive)."""
        return self.domains.get(domain.lower().rstrip("."), self.base)

    def to_dict(self) -> dict[str, object]:
        """The effective policy as plain values (``callscript policy --json``)."""
        out: dict[str, object] = {"workers": _section_dict(self.workers)}
        out.update(self.base.to_dict())
        out["domains"] = {name: rules.to_dict() for name, rules in sorted(self.domains.items())}
        return out


SECTIONS = types.MappingProxyType(
    {
        "script": ScriptRules,
        "api": ApiRules,
        "limits": Limits,
        "targets": TargetRules,
        "failure": FailureRules,
        "quarantine": QuarantineRules,
    }
)

# Each section's field types, resolved once (workers rebuild the rules of every step).
_HINTS: Mapping[type, Mapping[str, object]] = types.MappingProxyType(
    {
        cls: types.MappingProxyType(typing.get_type_hints(cls))
        for cls in (*SECTIONS.values(), WorkerRules)
    }
)


def _section_dict(section: object) -> dict[str, object]:
    return {f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section)}  # type: ignore[arg-type]


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


DEFAULT_POLICY = Path("sandbox") / "policy.toml"


def find_policy(path: str | None) -> tuple[Policy, str]:
    """The policy a command uses: ``path``, else ``sandbox/policy.toml`` when it exists
    in the current directory, else the built-in defaults; and where it came from.

    Raises:
        ConfigError: see :func:`load_policy`.
    """
    if path is not None:
        return load_policy(Path(path)), path
    if DEFAULT_POLICY.is_file():
        return load_policy(DEFAULT_POLICY), str(DEFAULT_POLICY)
    return Policy(), "built-in defaults"


def load_policy(path: Path | None = None) -> Policy:
    """Load and check a policy file; the built-in defaults when ``path`` is None.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or a value is wrong.
    """
    if path is None:
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the policy: {exc}") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, where: str = "policy") -> Policy:
    """Parse policy TOML text (see :func:`load_policy`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return policy_from_dict(data, where)


def policy_from_dict(data: Mapping[str, object], where: str = "policy") -> Policy:
    """Build a :class:`Policy` from parsed TOML (or the dict ``to_dict`` printed)."""
    allowed = {"workers", "domains", *SECTIONS}
    _no_unknown(data, allowed, where, "")
    workers = _build(WorkerRules, _table(data, "workers", where), WorkerRules(), where, "workers")
    base = _domain(data, DomainPolicy(), where, "")
    overrides: dict[str, DomainPolicy] = {}
    for name, table in _table(data, "domains", where).items():
        key = f"domains.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {key}: must be a table")
        _no_unknown(table, set(SECTIONS), where, key + ".")
        domain = name.lower().rstrip(".")
        if domain in overrides:
            raise ConfigError(f"{where}: {key}: the domain is given twice")
        overrides[domain] = _domain(table, base, where, key + ".")
    return Policy(workers, base, types.MappingProxyType(overrides))


def domain_policy_from_dict(data: Mapping[str, object], where: str = "limits") -> DomainPolicy:
    """Rebuild a :class:`DomainPolicy` from ``DomainPolicy.to_dict()`` output, checked."""
    _no_unknown(data, set(SECTIONS), where, "")
    return _domain(data, DomainPolicy(), where, "")


def _domain(
    data: Mapping[str, object], base: DomainPolicy, where: str, prefix: str
) -> DomainPolicy:
    sections = {
        name: _build(
            cls, _table(data, name, where, prefix), getattr(base, name), where, prefix + name
        )
        for name, cls in SECTIONS.items()
    }
    policy = DomainPolicy(**sections)
    _check_domain(policy, where, prefix)
    return policy


def _table(
    data: Mapping[str, object], name: str, where: str, prefix: str = ""
) -> dict[str, object]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {prefix}{name}: must be a table")
    return table


def _no_unknown(data: Mapping[str, object], allowed: set[str], where: str, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{where}: {prefix}{key}: unknown key")


_S = typing.TypeVar("_S")


def _build(cls: type[_S], table: Mapping[str, object], base: _S, where: str, key: str) -> _S:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _HINTS[cls]
    _no_unknown(table, set(fields), where, key + ".")
    changes: dict[str, object] = {}
    for name, value in table.items():
        changes[name] = _checked(value, hints[name], fields[name].metadata, where, f"{key}.{name}")
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


def _checked(
    value: object, hint: object, meta: Mapping[str, object], where: str, key: str
) -> object:
    if hint is bool:
        if type(value) is not bool:
            raise ConfigError(f"{where}: {key}: must be true or false")
        return value
    if hint is int or hint is float:
        ok = type(value) is int or (hint is float and type(value) is float)
        if not ok:
            raise ConfigError(
                f"{where}: {key}: must be {'an integer' if hint is int else 'a number'}"
            )
        number = typing.cast(float, value)
        low, high = meta.get("min"), meta.get("max")
        if (isinstance(low, int | float) and number < low) or (
            isinstance(high, int | float) and number > high
        ):
            raise ConfigError(f"{where}: {key}: must be between {low} and {high}")
        return value
    if hint is str:
        if type(value) is not str:
            raise ConfigError(f"{where}: {key}: must be a string")
        return value
    # tuple[str, ...]
    if type(value) is not list or any(type(item) is not str for item in value):
        raise ConfigError(f"{where}: {key}: must be a list of strings")
    return tuple(value)


def _check_domain(policy: DomainPolicy, where: str, prefix: str) -> None:
    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {prefix}{key}: {message}")

    for name in policy.script.builtins:
        if name not in SAFE_BUILTINS:
            raise bad("script.builtins", f"{name!r} is not a builtin scripts may be given")
    for name in policy.script.modules:
        if name not in SAFE_MODULES:
            raise bad("script.modules", f"{name!r} is not one of {sorted(SAFE_MODULES)}")
    for name in policy.api.names:
        if name not in API_NAMES:
            raise bad("api.names", f"{name!r} is not one of {list(API_NAMES)}")
    for name in policy.api.actions:
        if name not in ACTIONS:
            raise bad("api.actions", f"{name!r} is not one of {list(ACTIONS)}")
    for domain in policy.targets.domains:
        if not domain or any(c in domain for c in " @;:/?[]") or domain != domain.strip():
            raise bad("targets.domains", f"{domain!r} is not a domain name")
    targets = policy.targets
    if targets.default_timeout > targets.max_timeout:
        raise bad("targets.default_timeout", "must not exceed targets.max_timeout")
    kind, colon, code = policy.failure.fallback.partition(":")
    if kind not in FALLBACKS or (colon and kind != "reject"):
        raise bad("failure.fallback", "must be 'default', 'voicemail' or 'reject:CODE'")
    if kind == "reject" and colon and not (code.isdigit() and 400 <= int(code) <= 699):
        raise bad("failure.fallback", "the reject code must be 400-699")
