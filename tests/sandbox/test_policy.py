"""The policy file: defaults, overrides, and every wrong value refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscript.errors import ConfigError
from callscript.sandbox.policy import (
    DomainPolicy,
    Policy,
    domain_policy_from_dict,
    find_policy,
    load_policy,
    parse_policy,
    policy_from_dict,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sandbox" / "policy.toml"


def test_the_shipped_policy_is_the_built_in_default() -> None:
    """sandbox/policy.toml states exactly the built-in defaults."""
    assert load_policy(SHIPPED) == Policy()
    assert load_policy(None) == Policy()


def test_every_knob_of_the_shipped_policy_is_documented() -> None:
    """Each key of the policy has a comment above it and a mention in sandbox/README.md."""
    readme = (ROOT / "sandbox" / "README.md").read_text(encoding="utf-8")
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith(("#", " ", "]")) and not line.startswith("["):
            key = line.split("=")[0].strip()
            assert lines[index - 1].startswith("#") or lines[index - 1].startswith("    "), key
            assert f"`{key}`" in readme, key


def test_per_domain_overrides_merge_over_the_base() -> None:
    """[domains."d".section] changes only the keys it names, for that domain only."""
    policy = parse_policy(
        """
[limits]
cpu_per_step = 0.5
[targets]
max_targets = 4
[domains."Example.COM".limits]
wall_per_event = 5
[domains."Example.COM".failure]
fallback = "reject:503"
"""
    )
    base = policy.for_domain("other.org")
    assert base.limits.cpu_per_step == 0.5 and base.limits.wall_per_event == 2.0
    rules = policy.for_domain("EXAMPLE.com.")
    assert rules.limits.cpu_per_step == 0.5 and rules.limits.wall_per_event == 5
    assert rules.targets.max_targets == 4
    assert rules.failure.action == {"kind": "reject", "code": 503, "reason": None}
    assert base.failure.action == {"kind": "default"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\ncpu = 1", "limits.cpu: unknown key"),
        ("[nope]\nx = 1", "nope: unknown key"),
        ("limits = 3", "limits: must be a table"),
        ("[limits]\ncpu_per_step = 'fast'", "limits.cpu_per_step: must be a number"),
        ("[limits]\ncpu_per_step = 0", "limits.cpu_per_step: must be between"),
        ("[limits]\nmax_recursion = 2.5", "limits.max_recursion: must be an integer"),
        ("[limits]\nmax_recursion = true", "limits.max_recursion: must be an integer"),
        ("[targets]\nallow_private = 1", "targets.allow_private: must be true or false"),
        ("[targets]\ndomains = 'example.com'", "targets.domains: must be a list of strings"),
        ("[targets]\ndomains = ['a b']", "targets.domains: 'a b' is not a domain name"),
        ("[targets]\ndefault_timeout = 200", "targets.default_timeout: must not exceed"),
        ("[script]\nbuiltins = ['open']", "script.builtins: 'open' is not a builtin"),
        ("[script]\nbuiltins = ['type']", "script.builtins: 'type' is not a builtin"),
        ("[script]\nmodules = ['os']", "script.modules: 'os' is not one of"),
        ("[script]\nmodules = ['time']", "script.modules: 'time' is not one of"),
        ("[api]\nnames = ['event']", "api.names: 'event' is not one of"),
        ("[api]\nactions = ['hangup']", "api.actions: 'hangup' is not one of"),
        ("[failure]\nfallback = 'drop'", "failure.fallback: must be"),
        ("[failure]\nfallback = 'reject:200'", "failure.fallback: the reject code must be 400-699"),
        ("[failure]\nfallback = 'voicemail:1'", "failure.fallback: must be"),
        ("[workers]\ncount = 0", "workers.count: must be between"),
        ('[domains."a.com".workers]\ncount = 2', "domains.a.com.workers: unknown key"),
        (
            '[domains."a.com".limits]\ncpu_per_step = -1',
            "domains.a.com.limits.cpu_per_step: must be between",
        ),
        ("[limits", "not valid TOML"),
        (
            '[domains."a.com".limits]\n[domains."A.com".targets]',
            "domains.A.com: the domain is given twice",
        ),
    ],
)
def test_wrong_values_are_refused_by_name(text: str, message: str) -> None:
    """Every wrong key or value raises ConfigError naming the file and the key."""
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "policy.toml")
    assert str(info.value).startswith("policy.toml: ")
    assert message in str(info.value)


def test_domain_rules_round_trip_through_json() -> None:
    """DomainPolicy.to_dict() rebuilds the same rules (how workers receive them)."""
    rules = parse_policy('[domains."a.com".targets]\ndomains = ["b.org"]\n').for_domain("a.com")
    assert domain_policy_from_dict(rules.to_dict()) == rules
    assert domain_policy_from_dict(DomainPolicy().to_dict()) == DomainPolicy()
    with pytest.raises(ConfigError):
        domain_policy_from_dict({"limits": {"cpu_per_step": "x"}})


def test_the_printed_policy_loads_back() -> None:
    """Policy.to_dict() (what `callscript policy --json` prints) is a valid policy."""
    policy = parse_policy('[domains."a.com".limits]\ncpu_per_step = 1.5\n')
    assert policy_from_dict(policy.to_dict()) == policy


def test_find_policy_prefers_the_option_then_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--policy wins; else sandbox/policy.toml in the current directory; else the defaults."""
    monkeypatch.chdir(tmp_path)
    assert find_policy(None) == (Policy(), "built-in defaults")
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "policy.toml").write_text("[workers]\ncount = 3\n")
    policy, where = find_policy(None)
    assert policy.workers.count == 3 and where.endswith("policy.toml")
    other = tmp_path / "other.toml"
    other.write_text("[workers]\ncount = 5\n")
    assert find_policy(str(other))[0].workers.count == 5
    with pytest.raises(ConfigError, match="cannot read"):
        find_policy(str(tmp_path / "missing.toml"))
