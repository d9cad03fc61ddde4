"""Script file names from request-URIs, and the pure reload step."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callscript.engine.scripts import Registry, owner_of, reload, script_name
from callscript.sandbox.policy import Policy
from callscript.sip.uri import URI

GOOD = "def h(event):\n    event.action.reject(code=603)\nbasic.addEventListener('incoming', h)\n"
OTHER = "def h(event):\n    event.action.reject(code=486)\nbasic.addEventListener('incoming', h)\n"
BROKEN = "def h(event)\n    pass\n"


def test_script_name_is_domain_folder_and_user_file() -> None:
    """sip:alice@Example.COM names example.com/alice.py: the domain lower-cased, the user kept."""
    assert script_name(URI.parse("sip:Alice@Example.COM")) == "example.com/Alice.py"
    assert (
        script_name(URI.parse("sips:alice@example.com:5061;transport=tls"))
        == "example.com/alice.py"
    )


def test_script_name_decodes_escapes_as_the_rfc_compares_users() -> None:
    """RFC 3261 §19.1.4: %41 and A are the same user, so they name the same script."""
    assert script_name(URI.parse("sip:%41lice@example.com")) == script_name(
        URI.parse("sip:Alice@example.com")
    )


def test_script_name_encodes_every_unsafe_character() -> None:
    """Slashes, dots at the start, spaces and non-ASCII become %XX, so no path can escape."""
    assert (
        script_name(URI.parse("sip:..%2F..%2Fetc@example.com")) == "example.com/%2E.%2F..%2Fetc.py"
    )
    assert script_name(URI.parse("sip:a%20b@example.com")) == "example.com/a%20b.py"
    assert script_name(URI.parse("sip:%C3%A9@example.com")) == "example.com/%C3%A9.py"
    assert script_name(URI.parse("sip:bob@[2001:db8::1]")) == "%5B2001%3Adb8%3A%3A1%5D/bob.py"


def test_uris_without_a_user_name_no_script() -> None:
    """The proxy itself (no user part) and tel: URIs have no per-user script."""
    assert script_name(URI.parse("sip:example.com")) is None
    assert script_name(URI.parse("tel:+15551234")) is None


@given(st.text(min_size=1, max_size=40))
def test_no_user_part_can_name_a_path_outside_its_domain_folder(user: str) -> None:
    """Whatever the user part, the name is exactly <domain>/<one safe file name>.py."""
    escaped = "".join(f"%{b:02X}" for b in user.encode())
    name = script_name(URI.parse(f"sip:{escaped}@example.com"))
    assert name is not None
    domain, sep, file = name.partition("/")
    assert (domain, sep) == ("example.com", "/")
    assert "/" not in file and "\\x00" not in file and not file.startswith(".")
    assert file.endswith(".py") and file != ".py"


def test_owner_of_reverses_the_name() -> None:
    """The owner AoR of a script name is the user at the domain."""
    assert owner_of("example.com/alice.py") == "sip:alice@example.com"


def test_reload_loads_then_keeps_the_live_version_when_a_new_one_does_not_compile() -> None:
    """A broken version is rejected with file:line:col and the previous version stays live."""
    policy = Policy()
    registry, change = reload(Registry(), "example.com/bob.py", GOOD, policy)
    assert change.kind == "load"
    live = registry.get("example.com/bob.py")
    assert live is not None and live.source == GOOD
    registry, change = reload(registry, "example.com/bob.py", BROKEN, policy)
    assert change.kind == "reject"
    assert str(change.problems[0]).startswith("example.com/bob.py:1:")
    assert registry.get("example.com/bob.py") == live
    # The same broken content again is no news; a fixed version goes live.
    registry, change = reload(registry, "example.com/bob.py", BROKEN, policy)
    assert change.kind == "none"
    registry, change = reload(registry, "example.com/bob.py", OTHER, policy)
    assert change.kind == "load" and registry.get("example.com/bob.py").source == OTHER  # type: ignore[union-attr]


def test_reload_of_unchanged_content_and_deletion() -> None:
    """Saving the same bytes changes nothing; deleting the file removes the script."""
    policy = Policy()
    registry, _ = reload(Registry(), "example.com/bob.py", GOOD, policy)
    same, change = reload(registry, "example.com/bob.py", GOOD, policy)
    assert change.kind == "none" and same is registry
    gone, change = reload(registry, "example.com/bob.py", None, policy)
    assert change.kind == "delete" and gone.get("example.com/bob.py") is None
    assert reload(gone, "example.com/bob.py", None, policy)[1].kind == "none"
