"""A plain, JSON-ready view of a parsed message, for people and tools.

:func:`describe` turns a :class:`~callscript.sip.message.Message` into dicts,
lists, strings, ints and ``None`` only: the start line's parts, every header
value in order with the text it was written as and, for typed headers, its
parsed parts, and the body. ``callscript parse`` prints it as JSON.

Pure: no I/O. Header values are parsed as they are described, so a message
that has not been through :meth:`Message.validate` may raise ``ParseError``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from callscript.sip.abnf import split_list
from callscript.sip.address import Address
from callscript.sip.headers import LIST_HEADERS, Auth, CSeq, Date, HeaderValue, MediaType, Number
from callscript.sip.message import Message, Request, Response
from callscript.sip.uri import URI
from callscript.sip.via import Via

Json = dict[str, object]


def describe(msg: Message) -> Json:
    """Describe ``msg`` as a JSON-ready dict.

    Keys: ``kind`` (``request``/``response``); ``method`` and ``uri`` for a
    request, ``status`` and ``reason`` for a response; ``headers`` (one entry
    per value: ``name``, ``value`` as written, ``parsed`` for typed values);
    ``body`` (``length``, ``encoding`` ``utf-8`` or ``base64``, ``content``).

    Raises:
        ParseError: a header value or URI does not parse.
    """
    out: Json
    match msg:
        case Request():
            out = {"kind": "request", "method": msg.method, "uri": describe_uri(msg.uri)}
        case Response():
            out = {"kind": "response", "status": msg.status, "reason": _clean(msg.reason)}
        case _:
            raise TypeError(f"not a request or response: {type(msg).__name__}")
    out["headers"] = _headers(msg)
    out["body"] = _body(msg.body)
    return out


def describe_uri(uri: URI) -> Json:
    """The parts of a URI: scheme, user, password, host, port, params, headers."""
    out: Json = {"text": _clean(str(uri)), "scheme": uri.scheme}
    if uri.is_sip or uri.scheme == "tel":
        out.update(
            user=_opt(uri.user),
            password=_opt(uri.password),
            host=_clean(uri.host),
            port=uri.port,
            params=_params(uri.params.items()),
            headers=[[_clean(name), _clean(value)] for name, value in uri.headers],
        )
    else:
        out["opaque"] = _clean(uri.opaque)
    return out


def describe_value(value: HeaderValue) -> Json | None:
    """The parsed parts of one typed header value, or ``None`` for plain text values."""
    match value:
        case Address(star=True):
            return {"star": True}
        case Address():
            return {
                "display": _opt(value.display),
                "uri": describe_uri(value.uri),
                "params": _params(value.params.items()),
            }
        case Via():
            return {
                "protocol": value.protocol,
                "transport": value.transport,
                "host": _clean(value.host),
                "port": value.port,
                "params": _params(value.params.items()),
            }
        case CSeq():
            return {"number": value.number, "method": value.method}
        case Number():
            return {"value": value.number}
        case Auth():
            # Values unquoted, as a server reads them (the raw text keeps the quotes).
            return {
                "scheme": value.scheme,
                "params": _params((name, value.get(name)) for name in value.params),
            }
        case MediaType():
            return {
                "type": value.type,
                "subtype": value.subtype,
                "params": _params(value.params.items()),
            }
        case Date():
            return {"moment": value.moment.isoformat()}
        case _:
            return None


def _headers(msg: Message) -> list[Json]:
    # Values come from get_all(), which runs line by line and value by value,
    # so they line up with the raw elements split from each line here.
    values: dict[str, list[HeaderValue]] = {}
    used: dict[str, int] = {}
    out: list[Json] = []
    for key, text in msg.raw_headers():
        if key not in values:
            values[key] = msg.get_all(key)
            used[key] = 0
        parts = split_list(text) if key in LIST_HEADERS else [text]
        if parts == [""] and key in LIST_HEADERS:
            parts = []  # an empty list such as ``Supported:`` holds no values
        for part in parts:
            entry: Json = {"name": key, "value": _clean(part)}
            i = used[key]
            if i < len(values[key]):
                parsed = describe_value(values[key][i])
                if parsed is not None:
                    entry["parsed"] = parsed
            used[key] = i + 1
            out.append(entry)
    return out


def _body(body: bytes) -> Json:
    try:
        return {"length": len(body), "encoding": "utf-8", "content": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "length": len(body),
            "encoding": "base64",
            "content": base64.b64encode(body).decode("ascii"),
        }


def _params(items: Iterable[tuple[str, str | None]]) -> Json:
    return {_clean(name): _opt(value) for name, value in items}


def _opt(text: str | None) -> str | None:
    return None if text is None else _clean(text)


def _clean(text: str) -> str:
    # Header octets that are not UTF-8 were decoded with surrogateescape; show them as
    # \xNN so the view can always be encoded (json, a terminal) without losing them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text
