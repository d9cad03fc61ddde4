"""Scenario files: exactly one async uac or uas, loaded in a namespace of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from callscript.errors import ConfigError
from callscript.scenario import Scenario, load_scenario
from tests.scenario.conftest import scenario_path


def test_uac_and_uas_files_load_with_their_role_and_doc() -> None:
    """The role comes from the function the file defines; the doc from its docstring."""
    uac = load_scenario(scenario_path("uac_call"))
    assert (uac.name, uac.role) == ("uac_call", "uac")
    uas = load_scenario(scenario_path("uas_answer"))
    assert uas.role == "uas"
    assert "callee" in uas.doc


def test_loading_leaves_no_module_behind() -> None:
    """Two loads of one file are independent and nothing is added to sys.modules."""
    before = set(sys.modules)
    first = load_scenario(scenario_path("uac_call"))
    second = load_scenario(scenario_path("uac_call"))
    assert first.run is not second.run
    assert set(sys.modules) == before


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "define exactly one"),
        ("async def uac(c): pass\nasync def uas(c): pass\n", "define exactly one"),
        ("def uac(c): pass\n", "must be an 'async def'"),
        ("async def uac(c)\n", ":1:"),
        ("raise RuntimeError('nope')\n", "loading failed: RuntimeError: nope"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, source: str, message: str) -> None:
    """A file that cannot give one scenario is a ConfigError saying why."""
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(ConfigError, match=message):
        load_scenario(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A file that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"nothing\.py"):
        load_scenario(tmp_path / "nothing.py")


def test_scenarios_from_functions() -> None:
    """A scenario can be built from a function in code, and a role is checked."""

    async def caller(call: object) -> None:
        """Calls."""

    scenario = Scenario.uac(caller)
    assert (scenario.name, scenario.role, scenario.doc) == ("caller", "uac", "Calls.")
    assert Scenario.uas(caller).role == "uas"
    with pytest.raises(ConfigError):
        Scenario("x", "proxy", caller)
