"""``callscript parse FILE|-``: a message in, JSON out; errors name the line and the status.

Conformance messages are read in place from the shared corpus (env
``CALLSCRIPT_CONFORMANCE``, else ``<repo root>/../shared/conformance``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callscript.cli import main

ROOT = Path(__file__).resolve().parents[1]
CRLF = b"\r\n"


def conformance_dir() -> Path:
    """Where the RFC 4475 / RFC 5118 corpus lives; skips the test when it is absent."""
    env = os.environ.get("CALLSCRIPT_CONFORMANCE")
    path = Path(env) if env else ROOT.parent / "shared" / "conformance"
    if not (path / "rfc4475").is_dir():
        pytest.skip(
            f"conformance corpus not found at {path}: put it there (with rfc4475/ and rfc5118/) "
            "or set CALLSCRIPT_CONFORMANCE to its folder"
        )
    return path


def corpus_rows() -> list[Any]:
    """``(folder, name, valid, liberal_ok)`` per conformance message; empty when absent."""
    env = os.environ.get("CALLSCRIPT_CONFORMANCE")
    base = Path(env) if env else ROOT.parent / "shared" / "conformance"
    rows: list[Any] = []
    for folder, dat in (("rfc4475", "rfc4475"), ("rfc5118", "rfc5118/wire")):
        table = base / folder / "expectations.tsv"
        if not table.is_file():
            continue
        with table.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                liberal = row.get("liberal_ok", "n/a")
                rows.append(
                    pytest.param(dat, row["name"], row["valid"], liberal, id=f"{dat}/{row['name']}")
                )
    return rows or [
        pytest.param("", "", "", "", marks=pytest.mark.skip(reason="no conformance corpus"))
    ]


def message(*lines: str, body: bytes = b"") -> bytes:
    """Header lines joined with CRLF, the empty line, then ``body``."""
    return CRLF.join(line.encode() for line in lines) + CRLF + CRLF + body


SDP = (
    b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n"
)

INVITE = message(
    "INVITE sips:bob:secret@biloxi.example.com:5061;transport=tcp;lr SIP/2.0",
    "Via: SIP/2.0/TLS pc33.atlanta.example.com:5061;branch=z9hG4bK776asdhds, "
    "SIP/2.0/UDP 192.0.2.4;received=192.0.2.5;rport=5070",
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnashds8",
    "Max-Forwards: 70",
    'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774',
    "To: Bob <sip:bob@biloxi.example.com>",
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.example.com?Subject=hi>;expires=60",
    'Proxy-Authorization: Digest username="alice", realm="atlanta.example.com", nonce="84a4cc6f", '
    'uri="sips:bob@biloxi.example.com", response="7587245234b3434cc3412213e5f113a5", algorithm=MD5',
    "X-Custom:   kept as written  ",
    "Content-Type: application/sdp",
    f"Content-Length: {len(SDP)}",
    body=SDP,
)

RESPONSE = message(
    "SIP/2.0 180 Ringing",
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnashds8",
    "From: <sip:alice@atlanta.example.com>;tag=1928301774",
    "To: <sip:bob@biloxi.example.com>;tag=a6c85cf",
    "Call-ID: a84b4c76e66710",
    "CSeq: 1 INVITE",
    "Supported:",
    "Content-Length: 0",
)


def run_parse(capsys: pytest.CaptureFixture[str], path: Path | str) -> tuple[int, str, str]:
    """``callscript parse path`` in process: exit code, stdout, stderr."""
    code = main(["parse", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def parse_ok(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: bytes) -> dict[str, Any]:
    path = tmp_path / "msg.sip"
    path.write_bytes(data)
    code, out, err = run_parse(capsys, path)
    assert (code, err) == (0, "")
    view: dict[str, Any] = json.loads(out)
    return view


def test_request_prints_method_and_request_uri_parts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    view = parse_ok(capsys, tmp_path, INVITE)
    assert view["kind"] == "request"
    assert view["method"] == "INVITE"
    assert view["uri"] == {
        "text": "sips:bob:secret@biloxi.example.com:5061;transport=tcp;lr",
        "scheme": "sips",
        "user": "bob",
        "password": "secret",
        "host": "biloxi.example.com",
        "port": 5061,
        "params": {"transport": "tcp", "lr": None},
        "headers": [],
    }


def test_headers_come_in_order_one_entry_per_value_with_raw_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """RFC 3261 §7.3.1: a comma-separated Via line holds several values, each its own entry."""
    headers = parse_ok(capsys, tmp_path, INVITE)["headers"]
    assert [h["name"] for h in headers] == [
        "Via", "Via", "Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Contact",
        "Proxy-Authorization", "x-custom", "Content-Type", "Content-Length",
    ]  # fmt: skip
    assert [h["value"] for h in headers[:3]] == [
        "SIP/2.0/TLS pc33.atlanta.example.com:5061;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP 192.0.2.4;received=192.0.2.5;rport=5070",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnashds8",
    ]
    assert headers[10] == {"name": "x-custom", "value": "kept as written"}
    assert "parsed" not in headers[6]  # Call-ID is plain text


def test_typed_headers_show_their_parsed_parts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = parse_ok(capsys, tmp_path, INVITE)["headers"]
    assert h[0]["parsed"] == {
        "protocol": "SIP/2.0",
        "transport": "TLS",
        "host": "pc33.atlanta.example.com",
        "port": 5061,
        "params": {"branch": "z9hG4bK776asdhds"},
    }
    assert h[1]["parsed"]["params"] == {"received": "192.0.2.5", "rport": "5070"}
    assert h[3]["parsed"] == {"value": 70}
    assert h[4]["parsed"]["display"] == "Alice Liddell"
    assert h[4]["parsed"]["params"] == {"tag": "1928301774"}
    assert h[4]["parsed"]["uri"]["user"] == "alice"
    assert h[5]["parsed"]["display"] == "Bob"
    assert h[5]["parsed"]["params"] == {}
    assert h[7]["parsed"] == {"number": 314159, "method": "INVITE"}
    assert h[8]["parsed"]["uri"]["headers"] == [["Subject", "hi"]]
    assert h[8]["parsed"]["params"] == {"expires": "60"}
    auth = h[9]["parsed"]
    assert auth["scheme"] == "Digest"
    assert auth["params"]["username"] == "alice"
    assert auth["params"]["algorithm"] == "MD5"
    assert auth["params"]["uri"] == "sips:bob@biloxi.example.com"
    assert h[11]["parsed"] == {"type": "application", "subtype": "sdp", "params": {}}
    assert h[12]["parsed"] == {"value": len(SDP)}


def test_utf8_body_prints_as_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    view = parse_ok(capsys, tmp_path, INVITE)
    assert view["body"] == {"length": len(SDP), "encoding": "utf-8", "content": SDP.decode()}


def test_binary_body_prints_as_base64(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = b"\x00\xff\xfe binary \x80"
    data = INVITE.replace(SDP, body).replace(
        f"Content-Length: {len(SDP)}".encode(), f"Content-Length: {len(body)}".encode()
    )
    view = parse_ok(capsys, tmp_path, data)
    assert view["body"] == {
        "length": len(body),
        "encoding": "base64",
        "content": base64.b64encode(body).decode(),
    }


def test_response_prints_status_reason_and_empty_lists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    view = parse_ok(capsys, tmp_path, RESPONSE)
    assert (view["kind"], view["status"], view["reason"]) == ("response", 180, "Ringing")
    assert "method" not in view and "uri" not in view
    assert [h["name"] for h in view["headers"]] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Content-Length",
    ]
    assert view["body"] == {"length": 0, "encoding": "utf-8", "content": ""}


def test_dash_reads_the_message_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(RESPONSE)))
    code, out, err = run_parse(capsys, "-")
    assert (code, err) == (0, "")
    assert json.loads(out)["status"] == 180


def test_error_names_file_line_reason_and_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """RFC 3261 §20.22: Max-Forwards above 255 is rejected with 400, on the line it sits."""
    path = tmp_path / "bad.sip"
    path.write_bytes(RESPONSE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 INVITE\r\nMax-Forwards: 256"))
    code, out, err = run_parse(capsys, path)
    assert (code, out) == (1, "")
    assert err.startswith(f"{path}: line 7: bad Max-Forwards header: ")
    assert err.endswith(" (400)\n")


def test_error_without_a_line_prints_file_and_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "cut.sip"
    path.write_bytes(RESPONSE[:60])
    code, out, err = run_parse(capsys, path)
    assert (code, out) == (1, "")
    assert err == f"{path}: header section not terminated by an empty line (400)\n"


def test_missing_mandatory_header_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """RFC 3261 §8.1.1: a message without Call-ID fails the full check with 400."""
    path = tmp_path / "nocallid.sip"
    path.write_bytes(RESPONSE.replace(b"Call-ID: a84b4c76e66710\r\n", b""))
    code, _, err = run_parse(capsys, path)
    assert code == 1
    assert err == f"{path}: missing Call-ID header (400)\n"


def test_stdin_errors_are_reported_as_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"SIP/2.0 18 Ringing\r\n\r\n")))
    code, out, err = run_parse(capsys, "-")
    assert (code, out) == (1, "")
    assert err.startswith("<stdin>: line 1: ")
    assert err.endswith("(400)\n")


def test_unreadable_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for path in (tmp_path / "absent.sip", tmp_path):
        code, out, err = run_parse(capsys, path)
        assert (code, out) == (2, "")
        assert err.startswith(f"{path}: cannot read: ")


def test_unsupported_version_reports_505(capsys: pytest.CaptureFixture[str]) -> None:
    """RFC 3261 §8.2.1: a SIP version other than 2.0 is answered 505 (RFC 4475 badvers)."""
    path = conformance_dir() / "rfc4475" / "badvers.dat"
    code, out, err = run_parse(capsys, path)
    assert (code, out) == (1, "")
    assert err == f"{path}: line 1: SIP version 7.0 not supported (505)\n"


def test_whitespace_torture_invite_parses_to_its_values(capsys: pytest.CaptureFixture[str]) -> None:
    """RFC 3261 §7.3.1: folded lines and LWS everywhere still give plain values (RFC 4475 wsinv)."""
    code, out, _ = run_parse(capsys, conformance_dir() / "rfc4475" / "wsinv.dat")
    assert code == 0
    view = json.loads(out)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for h in view["headers"]:
        by_name.setdefault(h["name"], []).append(h)
    assert by_name["To"][0]["parsed"]["params"] == {"tag": "1918181833n"}
    assert by_name["From"][0]["parsed"]["params"] == {"tag": "98asjd8"}
    assert by_name["Max-Forwards"][0]["parsed"] == {"value": 68}
    assert by_name["CSeq"][0]["parsed"] == {"number": 9, "method": "INVITE"}
    assert [v["parsed"]["transport"] for v in by_name["Via"]] == ["UDP", "TCP", "UDP"]
    assert by_name["Via"][2]["parsed"]["params"] == {"branch": "z9hG4bK30239"}
    assert by_name["newfangledheader"][0]["value"] == "newfangled value continued newfangled value"
    assert by_name["unknownheaderwithunusualvalue"][0]["value"] == ";;,,;;,;"
    assert view["body"]["length"] == 150


def test_binary_multipart_body_of_the_corpus_prints_as_base64(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = conformance_dir() / "rfc4475" / "mpart01.dat"
    code, out, _ = run_parse(capsys, path)
    assert code == 0
    body = json.loads(out)["body"]
    assert body["encoding"] == "base64"
    assert path.read_bytes().endswith(base64.b64decode(body["content"]))


ERROR_LINE = re.compile(r"(?:line \d+: )?.+ \((\d{3})\)\n")


@pytest.mark.parametrize(("folder", "name", "valid", "liberal"), corpus_rows())
def test_corpus_message_is_accepted_or_rejected_as_the_rfc_says(
    capsys: pytest.CaptureFixture[str], folder: str, name: str, valid: str, liberal: str
) -> None:
    """Valid corpus messages print as JSON; invalid ones exit 1 with line, reason and status."""
    path = conformance_dir() / folder / f"{name}.dat"
    code, out, err = run_parse(capsys, path)
    if valid == "yes":
        assert (code, err) == (0, "")
    elif liberal != "yes":
        assert code == 1
    assert code in (0, 1)
    if code == 0:
        assert json.loads(out)["kind"] in ("request", "response")
    else:
        assert out == ""
        prefix = f"{path}: "
        assert err.startswith(prefix)
        assert ERROR_LINE.fullmatch(err[len(prefix) :]), err


def console_script() -> str:
    local = Path(sys.executable).with_name("callscript")
    found = str(local) if local.is_file() else shutil.which("callscript")
    if found is None:
        pytest.skip("the callscript console script is not installed (pip install -e .)")
    return found


def test_installed_console_script_parses_a_message(tmp_path: Path) -> None:
    path = tmp_path / "msg.sip"
    path.write_bytes(RESPONSE)
    done = subprocess.run(
        [console_script(), "parse", str(path)], capture_output=True, check=False, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout)["reason"] == "Ringing"


def test_installed_console_script_reads_stdin_and_exits_1_on_error() -> None:
    done = subprocess.run(
        [console_script(), "parse", "-"],
        input=b"SIP/7.0 200 OK\r\n\r\n",
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr == b"<stdin>: line 1: SIP version 7.0 not supported (505)\n"


def test_star_contact_date_and_non_utf8_header_bytes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A Contact of '*', a Date and raw non-UTF-8 header octets all print (octets as \\xNN)."""
    data = message(
        "REGISTER sip:registrar.biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7",
        "To: <sip:bob@biloxi.example.com>",
        "From: <sip:bob@biloxi.example.com>;tag=456248",
        "Call-ID: 843817637684230@998sdasdh09",
        "CSeq: 1827 REGISTER",
        "Contact: *",
        "Expires: 0",
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Content-Length: 0",
    ).replace(b"Expires: 0", b"X-Note: caf\xe9\r\nExpires: 0")
    headers = {h["name"]: h for h in parse_ok(capsys, tmp_path, data)["headers"]}
    assert headers["Contact"] == {"name": "Contact", "value": "*", "parsed": {"star": True}}
    assert headers["Date"]["parsed"] == {"moment": "2010-11-13T23:29:00+00:00"}
    assert headers["x-note"] == {"name": "x-note", "value": "caf\\xe9"}
