"""The example scripts in user_scripts/example.com, each run through the simulation engine."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from callscript.sandbox.compiler import check_script
from callscript.sandbox.simulate import Outcome, Simulation, Trace, simulate

from .conftest import Pools

EXAMPLES = Path(__file__).resolve().parents[2] / "user_scripts" / "example.com"
MONDAY_10 = datetime.datetime(
    2024, 5, 6, 10, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
)
SUNDAY_22 = datetime.datetime(
    2024, 5, 12, 22, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
)


def run(pools: Pools, user: str, caller: str, *outcomes: str, **fields: Any) -> Trace:
    path = EXAMPLES / f"{user}.py"
    fields.setdefault("callee", f"sip:{user}@example.com")
    sim = Simulation(
        source=path.read_text(encoding="utf-8"),
        name=f"example.com/{user}.py",
        caller=caller,
        outcomes=tuple(Outcome.parse(o) for o in outcomes),
        time=fields.pop("time", MONDAY_10),
        contacts=(f"sip:{user}@192.0.2.4:5060",),
        **fields,
    )
    return pools.run(simulate(pools.checked, sim))


def kinds(trace: Trace) -> list[str]:
    return [e.get("kind") or next(iter(e)) for e in trace.entries]


def disposition(trace: Trace) -> dict[str, Any]:
    final: dict[str, Any] = trace.entries[-1]["disposition"]
    return final


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_passes_the_checks(path: Path) -> None:
    """Each example compiles under the shipped policy without a problem."""
    from callscript.sandbox.policy import load_policy

    rules = load_policy(EXAMPLES.parents[1] / "sandbox" / "policy.toml").for_domain("example.com")
    assert check_script(path.read_text(encoding="utf-8"), path.name, rules) == ()


def test_alice(pools: Pools) -> None:
    """alice.py: rings the desk; busy, no answer or failure go to voicemail; outsiders get 603."""
    for outcome in ("busy", "noanswer", "failure"):
        trace = run(pools, "alice", "sip:bob@example.com", outcome)
        assert kinds(trace) == ["proxy", "voicemail", "disposition"]
        assert trace.entries[0]["targets"] == ["sip:alice@desk.example.com"]
        assert disposition(trace)["kind"] == "voicemail"
    assert disposition(run(pools, "alice", "sip:bob@example.com", "success")) == {"kind": "proxied"}
    outsider = run(pools, "alice", "sip:eve@elsewhere.net")
    assert disposition(outsider) == {
        "kind": "reject",
        "code": 603,
        "reason": "Decline",
        "seq": 0,
        "line": 11,
    }


def test_bob(pools: Pools) -> None:
    """bob.py: partner callers ring his phones, everyone else gets voicemail."""
    partner = run(pools, "bob", "sip:carol@partner.example.net", "noanswer")
    assert kinds(partner) == ["log", "proxy", "disposition"]
    assert partner.entries[1]["targets"] == ["sip:bob@192.0.2.4:5060"]
    assert disposition(partner) == {"kind": "relay"}
    assert disposition(run(pools, "bob", "sip:someone@example.org"))["kind"] == "voicemail"


def test_carol(pools: Pools) -> None:
    """carol.py: office hours ring the desk; evenings ring the mobile, then voicemail."""
    office = run(pools, "carol", "sip:bob@example.org", time=MONDAY_10)
    assert disposition(office) == {
        "kind": "proxy",
        "targets": ["sip:carol@desk.example.com"],
        "timeout": 30,
        "sequential": False,
        "seq": None,
        "line": None,
    }
    evening = run(pools, "carol", "sip:bob@example.org", "noanswer", time=SUNDAY_22)
    assert evening.entries[0]["targets"] == ["sip:carol@mobile.example.com"]
    assert disposition(evening)["kind"] == "voicemail"


def test_dave(pools: Pools) -> None:
    """dave.py: listed callers get 603, others ring by default."""
    blocked = run(pools, "dave", "sip:spam@telemarketing.example.org")
    assert kinds(blocked) == ["log", "reject", "disposition"]
    assert disposition(blocked)["code"] == 603
    assert disposition(run(pools, "dave", "sip:friend@example.org")) == {
        "kind": "default",
        "seq": None,
        "line": None,
    }


def test_erin(pools: Pools) -> None:
    """erin.py: desk, then mobile, then voicemail; stops at the first answer."""
    trace = run(pools, "erin", "sip:bob@example.org", "noanswer", "busy")
    targets = [e["targets"] for e in trace.entries if e.get("kind") == "proxy"]
    assert targets == [["sip:erin@desk.example.com"], ["sip:erin@mobile.example.com"]]
    assert disposition(trace)["kind"] == "voicemail"
    answered = run(pools, "erin", "sip:bob@example.org", "noanswer", "success")
    assert disposition(answered) == {"kind": "proxied"}


def test_frank(pools: Pools) -> None:
    """frank.py: a 302 to his new address."""
    final = disposition(run(pools, "frank", "sip:bob@example.org"))
    assert final["kind"] == "redirect" and final["permanent"] is False
    assert final["targets"] == ["sip:frank@newcompany.example.org"]


def test_grace(pools: Pools) -> None:
    """grace.py: every call rejected with a reason."""
    assert disposition(run(pools, "grace", "sip:bob@example.org"))["reason"] == "Away until Monday"


def test_heidi(pools: Pools) -> None:
    """heidi.py: outgoing calls to premium numbers are refused, others routed by default."""
    premium = run(
        pools,
        "heidi",
        "sip:heidi@example.com",
        callee="sip:0900123456@example.com",
        direction="outgoing",
    )
    assert disposition(premium)["code"] == 403
    normal = run(
        pools, "heidi", "sip:heidi@example.com", callee="sip:bob@example.org", direction="outgoing"
    )
    assert disposition(normal)["kind"] == "default"
    incoming = run(pools, "heidi", "sip:bob@example.org")
    assert disposition(incoming)["kind"] == "default"


def test_ivan(pools: Pools) -> None:
    """ivan.py: OPTIONS answered by the script; a MESSAGE logged and routed by default."""
    options = run(pools, "ivan", "sip:bob@example.org", method="OPTIONS")
    assert disposition(options)["kind"] == "accept"
    message = run(
        pools, "ivan", "sip:bob@example.org", method="MESSAGE", headers=(("Subject", "hello"),)
    )
    assert kinds(message) == ["log", "disposition"]
    assert message.entries[0]["text"] == "message hello"
