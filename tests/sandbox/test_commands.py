"""The `callscript check`, `simulate` and `policy` commands, run as the CLI runs them."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "user_scripts" / "example.com"
POLICY = str(ROOT / "sandbox" / "policy.toml")


def cli(name: str, *args: str) -> int:
    """Build the subcommand's parser the way callscript.cli does, and run it."""
    module = importlib.import_module(f"callscript.commands.{name}")
    assert module.__doc__ and module.__doc__.strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog=f"callscript {name}")
    module.add_arguments(parser)
    code: int = module.run(parser.parse_args(list(args)))
    return code


def test_check_passes_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """All example scripts check clean: exit 0, nothing printed."""
    files = [str(p) for p in sorted(EXAMPLES.glob("*.py"))]
    assert cli("check", "--policy", POLICY, *files) == 0
    assert capsys.readouterr().out == ""


def test_check_prints_each_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Problems print as FILE:LINE:COL: message; any error exits 1; warnings alone exit 0."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n@basic.on('incoming')\ndef h(event):\n    event.__class__\n")
    warned = tmp_path / "warned.py"
    warned.write_text("x = 1\n")
    assert cli("check", str(bad), str(warned)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{bad}:1:1: import of 'os' is not allowed by the sandbox policy",
        f"{bad}:5:5: attribute '__class__' is not allowed (names starting with '_' are private)",
        f"{warned}:1:1: warning: the script registers no handler (basic.on)",
    ]
    assert cli("check", str(warned)) == 0


def test_check_uses_the_domain_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file's directory names its domain, whose overrides apply (or --domain)."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[domains."math.example".script]\nmodules = ["math"]\n')
    script = tmp_path / "math.example" / "ann.py"
    script.parent.mkdir()
    script.write_text("import math\n@basic.on('incoming')\ndef h(e):\n    log(math.pi)\n")
    assert cli("check", "--policy", str(policy), str(script)) == 0
    assert cli("check", "--policy", str(policy), "--domain", "other.example", str(script)) == 1
    capsys.readouterr()


def test_check_reports_unreadable_files_and_bad_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 for a file that cannot be read or a wrong policy."""
    assert cli("check", str(tmp_path / "missing.py")) == 2
    assert "cannot read" in capsys.readouterr().err
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\ncpu = 1\n")
    assert cli("check", "--policy", str(policy), str(EXAMPLES / "alice.py")) == 2
    assert "limits.cpu: unknown key" in capsys.readouterr().err


def test_simulate_prints_actions_and_disposition(capsys: pytest.CaptureFixture[str]) -> None:
    """simulate runs the script in a worker and prints each step; outcomes apply in order."""
    code = cli(
        "simulate", str(EXAMPLES / "erin.py"), "--from", "sip:bob@example.org", "--to", "sip:erin@example.com",
        "--outcome", "noanswer", "--outcome", "busy", "--policy", POLICY,
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "proxy sip:erin@desk.example.com timeout=15 (line 12) -> noanswer",
        "log (line 13): sip:erin@desk.example.com noanswer",
        "proxy sip:erin@mobile.example.com timeout=20 (line 12) -> busy",
        "log (line 13): sip:erin@mobile.example.com busy",
        "voicemail (line 16)",
        "=> voicemail",
    ]


def test_simulate_default_outcome_is_success(capsys: pytest.CaptureFixture[str]) -> None:
    """With no --outcome left, proxy() gets 'success' (or --default-outcome)."""
    args = [
        "simulate",
        str(EXAMPLES / "alice.py"),
        "--from",
        "sip:bob@example.com",
        "--to",
        "sip:alice@example.com",
    ]
    assert cli(*args, "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["kind"] == "proxy" and lines[0]["outcome"] == "success"
    assert lines[-1] == {"disposition": {"kind": "proxied"}}
    assert cli(*args, "--default-outcome", "noanswer") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "=> voicemail"


def test_simulate_outgoing_and_other_methods(capsys: pytest.CaptureFixture[str]) -> None:
    """--direction outgoing makes --from the owner; --method and --header shape the request."""
    assert cli(
        "simulate", str(EXAMPLES / "heidi.py"), "--from", "sip:heidi@example.com",
        "--to", "sip:0900555@example.com", "--direction", "outgoing",
    ) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines()[-1] == "=> reject 403 Premium numbers are blocked"
    assert cli(
        "simulate", str(EXAMPLES / "ivan.py"), "--from", "sip:bob@example.org", "--to", "sip:ivan@example.com",
        "--method", "message", "--header", "Subject: hi there",
    ) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == ["log (line 10): message hi there", "=> default"]


def test_simulate_redirection_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """redirection=URI,... gives the 3xx Contacts to event.redirect_targets."""
    script = tmp_path / "r.py"
    script.write_text(
        "@basic.on('incoming')\ndef h(event):\n"
        "    if event.action.proxy(location='sip:r@example.com') == 'redirection':\n"
        "        event.action.redirect(location=event.redirect_targets)\n"
    )
    args = [
        "simulate",
        str(script),
        "--from",
        "sip:bob@example.org",
        "--to",
        "sip:rita@example.com",
    ]
    assert cli(*args, "--outcome", "redirection=sip:r@new.example.org,sip:r2@new.example.org") == 0
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "=> redirect 302 sip:r@new.example.org sip:r2@new.example.org"
    )


def test_simulate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1 for a compile error (FILE:LINE:COL), 3 when the sandbox stops the script
    (the fallback printed), 2 for usage errors."""
    args = ["--from", "sip:bob@example.org", "--to", "sip:x@example.com"]
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nimport socket\n")
    assert cli("simulate", str(broken), *args) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{broken}:2:1: import of 'socket' is not allowed by the sandbox policy"
    ]
    failing = tmp_path / "failing.py"
    failing.write_text(
        "@basic.on('incoming')\ndef h(event):\n    event.action.reject(code=486)\n    event.action.voicemail()\n"
    )
    assert cli("simulate", str(failing), *args) == 3
    assert capsys.readouterr().out.splitlines() == [
        "reject 486 (line 3)",
        f"{failing}:4: stopped (error): the call was already answered by reject() at line 3",
        "=> fallback: default",
    ]
    slow = tmp_path / "slow.py"
    slow.write_text("while True:\n    pass\n")
    assert cli("simulate", str(slow), *args, "--json") == 3
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["failure"]["kind"] == "timeout" and last["fallback"] == {
        "kind": "default",
        "seq": None,
        "line": None,
    }
    assert cli("simulate", str(tmp_path / "missing.py"), *args) == 2
    assert cli("simulate", str(failing), "--from", "x", "--to", "nonsense") == 2
    with pytest.raises(SystemExit):
        cli("simulate", str(failing), *args, "--outcome", "ringing")
    capsys.readouterr()


def test_policy_prints_the_effective_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """policy prints TOML-like tables (overrides as differences) or JSON; --domain merges."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[limits]\ncpu_per_step = 0.1\n[domains."example.com".limits]\ncpu_per_step = 0.5\n'
    )
    assert cli("policy", "--policy", str(policy)) == 0
    out = capsys.readouterr().out
    assert f"# sandbox policy from {policy}" in out
    assert "[limits]\ncpu_per_step = 0.1\n" in out
    assert '[domains."example.com".limits]\ncpu_per_step = 0.5' in out
    assert cli("policy", "--policy", str(policy), "--json", "--domain", "example.com") == 0
    view = json.loads(capsys.readouterr().out)
    assert view["domain"] == "example.com" and view["limits"]["cpu_per_step"] == 0.5
    assert cli("policy", "--policy", POLICY, "--json") == 0
    assert json.loads(capsys.readouterr().out)["failure"] == {"fallback": "default"}
    policy.write_text("[limits]\ncpu_per_step = true\n")
    assert cli("policy", "--policy", str(policy)) == 2
    assert "limits.cpu_per_step" in capsys.readouterr().err
