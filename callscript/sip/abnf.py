"""Lexical rules of RFC 3261 §25 shared by the URI, header and message parsers.

Everything here works on ``str`` values whose line folding has already been
replaced by a single space (RFC 3261 §7.3.1), so LWS is ``[ \\t]*``. The
functions are small and linear in their input; none of them recurses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from callscript.sip.errors import LocalProtocolError, ParseError

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 3261 §25.1: word adds the separators that a Call-ID may carry.
_WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
# The lookbehind makes a long run of blanks cost one attempt, not one per blank.
_FOLD_RE = re.compile(r"(?<![ \t])[ \t]*+\r?\n[ \t]+")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
WSP = " \t"

Param = tuple[str, str | None]


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN_RE.fullmatch(text) is not None


def is_word(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 word (Call-ID halves)."""
    return _WORD_RE.fullmatch(text) is not None


def unfold(text: str) -> str:
    """RFC 3261 §7.3.1: replace each line fold (CRLF followed by LWS) with one SP."""
    if "\n" not in text:
        return text
    return _FOLD_RE.sub(" ", text)


def has_control(text: str) -> bool:
    """True when ``text`` holds CR, LF or another control character (HTAB allowed)."""
    return _CTL_RE.search(text) is not None


def unescape(text: str) -> str:
    """RFC 3261 §19.1.2: decode ``%HH`` escapes once (never recursively).

    Escapes decode to the byte they name; UTF-8 sequences are rebuilt, and
    bytes that are not UTF-8 survive as surrogates so that distinct values
    stay distinct (``%00`` does not truncate anything).
    """
    if "%" not in text:
        return text
    # split() alternates literal text and the two hex digits of each escape.
    parts = _ESCAPE_RE.split(text)
    out = bytearray()
    for i, part in enumerate(parts):
        if i % 2:
            out.append(int(part, 16))
        elif part:
            out += _encode(part)
    return out.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A lone surrogate that no decoded byte produced (only our own callers make those).
        return text.encode("utf-8", "surrogatepass")


# RFC 3261 §19.1.4: reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
RESERVED = frozenset(";/?:@&=+$,")


def normalize_escapes(text: str) -> str:
    """RFC 3261 §19.1.4: the form in which two URI components compare.

    An escape of a character outside the ``reserved`` set equals the character
    itself, so it is decoded; an escaped reserved character stays escaped
    (upper-case hex), because ``%3B`` and ``;`` are not the same. Decoding
    happens once, never recursively.
    """
    if "%" not in text:
        return text
    parts = _ESCAPE_RE.split(text)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
            continue
        code = int(part, 16)
        if code < 0x80 and chr(code) not in RESERVED and chr(code) != "%":
            out.append(chr(code))
        else:
            out.append("%" + part.upper())
    return "".join(out)


def quote(text: str) -> str:
    """Return ``text`` as an RFC 3261 quoted-string.

    ``"`` and ``\\`` and the control characters that qdtext excludes are written
    as quoted-pairs (RFC 3261 §25.1); CR and LF cannot be quoted at all.

    Raises:
        LocalProtocolError: ``text`` holds CR or LF.
    """
    if "\r" in text or "\n" in text:
        raise LocalProtocolError("a quoted string cannot hold CR or LF")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    if _CTL_RE.search(escaped) is not None:
        escaped = _CTL_RE.sub(lambda m: "\\" + m.group(0), escaped)
    return '"' + escaped + '"'


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string that opens at ``text[start]`` (a ``"``).

    Returns:
        The unquoted value (quoted-pairs resolved) and the index after the closing quote.
    Raises:
        ParseError: the string is never closed.
    """
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        j = i
        while j < n and text[j] != '"' and text[j] != "\\":
            j += 1
        out.append(text[i:j])
        if j >= n:
            break
        if text[j] == '"':
            return "".join(out), j + 1
        # RFC 3261 §25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
        if j + 1 >= n:
            break
        out.append(text[j + 1])
        i = j + 2
    raise ParseError("unterminated quoted string", text=text)


def skip_quoted(text: str, start: int) -> int:
    """Index just after the quoted-string opening at ``text[start]``; -1 if unterminated."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return i + 1
        i += 2 if ch == "\\" else 1
    return -1


def split_outside_quotes(text: str, sep: str, *, angle: bool = False) -> list[str]:
    """Split ``text`` on ``sep`` where it is outside quoted strings (and ``<...>``).

    Raises:
        ParseError: an unterminated quoted string or an unclosed ``<``.
    """
    if '"' not in text and (not angle or "<" not in text):
        return text.split(sep)
    parts: list[str] = []
    begin = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = skip_quoted(text, i)
            if i < 0:
                raise ParseError("unterminated quoted string", text=text)
            continue
        if angle and ch == "<":
            close = text.find(">", i)
            if close < 0:
                raise ParseError("'<' without '>'", text=text)
            i = close + 1
            continue
        if ch == sep:
            parts.append(text[begin:i])
            begin = i + 1
        i += 1
    parts.append(text[begin:])
    return parts


def split_list(text: str) -> list[str]:
    """RFC 3261 §7.3.1: split a comma-separated header value into its elements.

    Commas inside quoted strings and ``<...>`` do not split. Empty elements are
    kept (as ``""``) so that callers can reject them.
    """
    return [part.strip(WSP) for part in split_outside_quotes(text, ",", angle=True)]


def parse_params(text: str) -> list[Param]:
    """Parse ``*( SEMI generic-param )`` (RFC 3261 §25.1), LWS allowed around ``;`` and ``=``.

    ``text`` starts at the first ``;`` (or is empty). Values are kept as written,
    quoted strings included, so that they print back the same.

    Raises:
        ParseError: an empty parameter, a name that is not a token, or a bad value.
    """
    text = text.strip(WSP)
    if not text:
        return []
    if text[0] != ";":
        raise ParseError(f"expected ';' before parameters, got {text[:20]!r}", text=text)
    params: list[Param] = []
    for chunk in split_outside_quotes(text[1:], ";"):
        name, eq, value = chunk.partition("=")
        name = name.strip(WSP)
        if not _TOKEN_RE.fullmatch(name):
            raise ParseError(f"bad parameter name {name!r}", text=text)
        if not eq:
            params.append((name.lower(), None))
            continue
        value = value.strip(WSP)
        if not value or not is_param_value(value):
            raise ParseError(f"bad value for parameter {name!r}", text=text)
        params.append((name.lower(), value))
    return params


# Parameters written as plain tokens: ``;name`` or ``;name=value`` (split_simple_params).
# The fast patterns of via.py, address.py and headers.py use possessive repeats (``*+``,
# ``++``) where what follows a run can never be part of it: the regex engine then keeps
# no backtracking state, which halves the cost of a match.
SIMPLE_PARAMS = r"(?:;[A-Za-z0-9\-.!%*_+`'~=;]*+)?"


def split_simple_params(text: str) -> Params | None:
    """Parameters matched by :data:`SIMPLE_PARAMS` (``;tag=x;lr``), or ``None``.

    ``None`` means the text is not a run of ``;token[=token]``: an empty
    parameter or value, or a second ``=``. The caller then takes its careful path.
    """
    if not text:
        return Params()
    params: dict[str, str | None] = {}
    for chunk in text[1:].split(";"):
        name, eq, value = chunk.partition("=")
        if eq:
            if not value or "=" in value:
                return None
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return None if "" in params else Params(params)


def is_param_value(value: str) -> bool:
    """True when ``value`` is a gen-value: a token, a host or a quoted-string."""
    # RFC 3261 §25.1: gen-value = token / host / quoted-string. RFC 5118 §4.5 asks
    # for IPv6 references with brackets in ``received``, so '[', ']' and ':' pass.
    if not value:
        return False
    if value[0] == '"':
        # RFC 3261 §25.1: neither qdtext nor quoted-pair holds CR or LF.
        return skip_quoted(value, 0) == len(value) and "\r" not in value and "\n" not in value
    return all(ch in TOKEN_CHARS or ch in "[]:" for ch in value)


# Parameter names our own code sets; any other name is checked to be a token.
_PARAM_NAMES = frozenset({"branch", "rport", "received", "tag", "lr", "transport", "expires", "q"})
# Parameter values that need no closer look: tokens and hosts (IPv6 references included).
_PLAIN_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:]+")


def checked_params(params: Params | Mapping[str, str | None] | None) -> Params:
    """Parameters handed in by our own code, checked so that they print back as one value.

    Names are lower-cased; each must be a token and each value a gen-value.

    Raises:
        LocalProtocolError: a name or value that would not survive printing.
    """
    if not params:
        return Params()
    out: dict[str, str | None] = {}
    for name, value in params.items():
        out[check_param(name, value)] = value
    return Params(out)


def check_param(name: str, value: str | None) -> str:
    """The lower-cased ``name`` of a parameter our own code sets, once checked.

    Raises:
        LocalProtocolError: ``name`` is not a token or ``value`` not a gen-value.
    """
    if name in _PARAM_NAMES:
        if value is None or _PLAIN_VALUE_RE.fullmatch(value) is not None:
            return name
    elif _TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"bad parameter {name!r}={value!r}")
    if value is not None and _PLAIN_VALUE_RE.fullmatch(value) is None and not is_param_value(value):
        raise LocalProtocolError(f"bad parameter {name!r}={value!r}")
    return name.lower()


def format_params(params: Iterable[Param]) -> str:
    """Print parameters as ``;name=value`` (``;name`` for a valueless one)."""
    return "".join([f";{name}" if value is None else f";{name}={value}" for name, value in params])


class Params(dict[str, str | None]):
    """Read-only, ordered parameters; names are case-insensitive (RFC 3261 §7.3.1).

    Keys are stored lower-cased; values as written (``None`` for ``;lr``).
    Looking up ``params['Tag']`` finds ``tag``. Build a changed copy with
    :meth:`replace`.
    """

    __slots__ = ()

    def __missing__(self, key: str) -> str | None:
        low = key.lower()
        if low != key and dict.__contains__(self, low):
            return dict.__getitem__(self, low)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (
            isinstance(key, str) and dict.__contains__(self, key.lower())
        )

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default

    def replace(self, **changes: str | None) -> Params:
        """A copy with ``changes`` applied; remove parameters with :meth:`without`."""
        new = dict(self)
        for name, value in changes.items():
            new[name.lower()] = value
        return Params(new)

    def without(self, *names: str) -> Params:
        """A copy without ``names``."""
        drop = {name.lower() for name in names}
        return Params({k: v for k, v in self.items() if k not in drop})

    def __str__(self) -> str:
        return format_params(self.items())

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Params are read-only; use replace() or without()")

    __setitem__ = _readonly
    __delitem__ = _readonly
    update = _readonly
    pop = _readonly
    popitem = _readonly  # type: ignore[assignment]
    setdefault = _readonly
    clear = _readonly
    __ior__ = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))
