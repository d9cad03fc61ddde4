"""``callscript users``: accounts added, listed, changed and removed in a real SQLite file."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from callscript import cli
from callscript.commands import users
from callscript.store import SqliteStore

NOW = 1_700_000_000.0


class Terminal(io.StringIO):
    """Standard input that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def parser() -> argparse.ArgumentParser:
    """``callscript`` with the ``users`` command, built the way cli.build_parser builds it."""
    top = argparse.ArgumentParser(prog="callscript")
    sub = top.add_subparsers(dest="command", required=True)
    command = sub.add_parser("users", description=users.__doc__)
    users.add_arguments(command)
    command.set_defaults(_run=users.run)
    return top


def call(
    argv: list[str],
    *,
    stdin: io.StringIO | None = None,
    answers: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Parse ``callscript users ARGV`` and run it with this test's stdin, prompt and clock."""
    args = parser().parse_args(["users", *argv])
    replies: Iterator[str] = iter(answers or [])

    def prompt(text: str) -> str:
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None

    return users.run_with(
        args, stdin=stdin or io.StringIO(""), prompt=prompt, now=NOW, env=env or {}
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "accounts.db")


def listed(db: str, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert call(["list", "--json", "--db", db, *extra]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_add_list_duplicate_and_remove(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["add", "alice@Example.com", "--password", "s3cret", "--db", db]) == 0
    assert "added alice@example.com" in capsys.readouterr().out

    assert call(["list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alice@example.com\trealm=example.com\trole=user\tcreated=2023-11-14T")

    assert call(["add", "alice@example.com", "--password", "other", "--db", db]) == 1
    err = capsys.readouterr().err
    assert err.startswith("callscript users: ") and "already exists" in err
    assert err.count("\n") == 1

    assert call(["remove", "alice@example.com", "--db", db]) == 0
    assert capsys.readouterr().out == "removed alice@example.com\n"
    assert listed(db, capsys) == []
    assert call(["remove", "alice@example.com", "--db", db]) == 1
    assert "no account alice@example.com" in capsys.readouterr().err


def test_list_json_has_no_secrets_and_filters_by_domain(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    call(["add", "bob@b.example.com", "--password", "x", "--admin", "--realm", "R", "--db", db])
    call(["add", "alice@a.example.com", "--password", "y", "--db", db])
    rows = listed(db, capsys)
    assert [(r["username"], r["domain"], r["realm"], r["role"]) for r in rows] == [
        ("alice", "a.example.com", "a.example.com", "user"),
        ("bob", "b.example.com", "R", "admin"),
    ]
    assert set(rows[0]) == {"username", "domain", "realm", "role", "created_at", "algorithms"}
    assert rows[0]["created_at"] == NOW
    assert "MD5" in rows[0]["algorithms"]  # type: ignore[operator]
    assert [r["username"] for r in listed(db, capsys, "--domain", "B.example.com")] == ["bob"]


def test_password_from_stdin_is_its_first_line(db: str) -> None:
    assert (
        call(
            ["add", "alice@example.com", "--password-stdin", "--db", db],
            stdin=io.StringIO("pw 1\nnext\n"),
        )
        == 0
    )
    with SqliteStore(db) as store:
        assert (
            store.accounts.ha1("alice", "example.com", "MD5")
            == hashlib.md5(b"alice:example.com:pw 1").hexdigest()
        )


def test_terminal_prompts_twice_and_refuses_a_mismatch(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["add", "alice@example.com", "--db", db]
    assert call(argv, stdin=Terminal(), answers=["one", "two"]) == 1
    assert "do not match" in capsys.readouterr().err
    assert listed(db, capsys) == []
    assert call(argv, stdin=Terminal(), answers=["one"]) == 1  # end of input at the second prompt
    assert call(argv, stdin=Terminal(), answers=["same", "same"]) == 0
    with SqliteStore(db) as store:
        assert (
            store.accounts.ha1("alice", "example.com", "MD5")
            == hashlib.md5(b"alice:example.com:same").hexdigest()
        )


def test_no_password_without_a_terminal_is_a_usage_error(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert call(["add", "alice@example.com", "--db", db]) == 2
    assert "no password" in capsys.readouterr().err
    assert listed(db, capsys) == []


def test_empty_password_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        call(["add", "alice@example.com", "--password-stdin", "--db", db], stdin=io.StringIO("\n"))
        == 1
    )
    assert "password must not be empty" in capsys.readouterr().err


def test_passwd_changes_the_password_of_an_existing_account_only(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    call(["add", "alice@example.com", "--password", "old", "--realm", "R", "--db", db])
    assert call(["passwd", "alice@example.com", "--password", "new", "--db", db]) == 0
    with SqliteStore(db) as store:
        assert store.accounts.ha1("alice", "R", "MD5") == hashlib.md5(b"alice:R:new").hexdigest()
    assert call(["passwd", "bob@example.com", "--password", "new", "--db", db]) == 1
    assert "no account bob@example.com" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "alice", "--password", "x"],
        ["add", "@example.com", "--password", "x"],
        ["add", "alice@", "--password", "x"],
        ["add", "a@b@c", "--password", "x"],
        ["add", "alice@example.com", "--password", "x", "--password-stdin"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["users", *argv])
    assert exc.value.code == 2


def test_nothing_printed_ever_holds_a_password_or_ha1(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "Circle Of Life"
    ha1 = "939e7578ed9e3c518a452acee763bce9"
    base = ["--db", db]
    call(["add", "Mufasa@host.com", "--password", password, "--realm", "testrealm@host.com", *base])
    call(["add", "Mufasa@host.com", "--password", password, *base])
    call(["passwd", "Mufasa@host.com", "--password", password, *base])
    call(["list", *base])
    call(["list", "--json", *base])
    with SqliteStore(db) as store:
        assert store.accounts.ha1("Mufasa", "testrealm@host.com", "MD5") == ha1
    printed = capsys.readouterr()
    assert password not in printed.out + printed.err
    assert ha1 not in printed.out + printed.err
    assert password.encode() not in Path(db).read_bytes()


def test_a_database_that_cannot_be_opened_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all " * 200)
    assert call(["list", "--db", str(bad)]) == 1
    assert capsys.readouterr().err.startswith("callscript users: ")


def test_database_comes_from_db_then_environment_then_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from_env = tmp_path / "from-env.db"
    assert (
        call(["add", "a@example.com", "--password", "x"], env={"CALLSCRIPT_DB": str(from_env)}) == 0
    )
    assert call(["add", "b@example.com", "--password", "x"]) == 0
    assert (
        call(
            ["add", "c@example.com", "--password", "x", "--db", "explicit.db"],
            env={"CALLSCRIPT_DB": str(from_env)},
        )
        == 0
    )
    for path, user in (
        (from_env, "a"),
        (tmp_path / "callscript.db", "b"),
        (tmp_path / "explicit.db", "c"),
    ):
        with SqliteStore(path) as store:
            assert [a.username for a in store.accounts.list()] == [user]


def test_callscript_main_runs_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command line: cli.main once ``users`` is registered, else the same parser here."""
    monkeypatch.setenv("CALLSCRIPT_DB", str(tmp_path / "main.db"))

    def main(argv: list[str]) -> int:
        if "users" in cli.COMMANDS:
            return cli.main(argv)
        args = parser().parse_args(argv)
        code: int = args._run(args)
        return code

    assert main(["users", "add", "carol@example.com", "--password", "pw", "--admin"]) == 0
    assert main(["users", "add", "carol@example.com", "--password", "pw"]) == 1
    capsys.readouterr()
    assert main(["users", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["username"], row["role"]) == ("carol", "admin")
    assert main(["users", "remove", "carol@example.com"]) == 0
    assert main(["users", "remove", "carol@example.com"]) == 1
