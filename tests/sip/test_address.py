"""name-addr / addr-spec values: From, To, Contact, Route, Record-Route (RFC 3261 §20, §25.1)."""

from __future__ import annotations

import pytest

from callscript.sip.abnf import Params
from callscript.sip.address import Address, parse_address, parse_contact
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.uri import URI, parse_uri


def test_quoted_display_name_uri_and_tag() -> None:
    """RFC 3261 §25.1: name-addr = [ display-name ] LAQUOT addr-spec RAQUOT, then params."""
    addr = parse_address('"Bob Smith" <sip:bob@biloxi.example.com>;tag=a6c85cf')
    assert addr.display == "Bob Smith"
    assert addr.uri == parse_uri("sip:bob@biloxi.example.com")
    assert addr.tag == "a6c85cf" and addr.params["Tag"] == "a6c85cf"
    assert str(addr) == '"Bob Smith" <sip:bob@biloxi.example.com>;tag=a6c85cf'
    assert addr.value == str(addr)
    assert not addr.star


def test_quoted_display_name_with_quoted_pairs() -> None:
    """RFC 3261 §25.1: quoted-pair escapes '"' and '\\' (and any other octet but CR/LF)."""
    addr = parse_address(r'"J Rosenberg \\\"" <sip:jdrosen@example.com>')
    assert addr.display == 'J Rosenberg \\"'
    raw = parse_address('"BEL:\\\x07 NUL:\\\x00" <sip:a@b.example>')
    assert raw.display == "BEL:\x07 NUL:\x00"
    assert parse_address('"" <sip:a@b.example>').display == ""
    assert parse_address('"caf\u00e9 \u5927" <sip:a@b.example>').display == "caf\u00e9 \u5927"


def test_token_display_name_words_are_joined_by_one_space() -> None:
    """RFC 3261 §25.1: display-name = *(token LWS); LWS between words is one SP."""
    assert parse_address("Bob <sip:bob@b.example>").display == "Bob"
    assert parse_address("token1~` token2'+_  <sip:a@b.example>").display == "token1~` token2'+_"
    assert parse_address("A \t B <sip:a@b.example>").display == "A B"


def test_no_lws_between_display_name_and_angle_bracket_is_accepted() -> None:
    """RFC 4475 §3.1.1.6: 'caller<sip:...>' is accepted though outside the grammar."""
    addr = parse_address("caller<sip:caller@example.com>;tag=323")
    assert (addr.display, str(addr.uri), addr.tag) == ("caller", "sip:caller@example.com", "323")
    assert parse_address('"caller"<sip:caller@example.com>').display == "caller"


def test_unquoted_display_name_with_separators_is_refused() -> None:
    """RFC 4475 §3.1.2.15: 'Bell, Alexander' must be quoted; never guessed."""
    with pytest.raises(ParseError, match="must be quoted"):
        parse_address("Bell, Alexander <sip:a.g.bell@example.com>;tag=43")
    with pytest.raises(ParseError, match="must be quoted"):
        parse_address("Watson: Thomas <sip:t.watson@example.org>")


def test_unterminated_quoted_display_name_is_refused() -> None:
    """RFC 4475 §3.1.2.6: a quote that never closes is an error, not a guess."""
    with pytest.raises(ParseError, match="unterminated quoted string"):
        parse_address('"Mr. J. User <sip:j.user@example.com>')
    with pytest.raises(ParseError):
        parse_address('"ends with a backslash\\')


def test_whitespace_inside_angle_brackets_is_refused() -> None:
    """RFC 3261 §25.1: no LWS inside '<...>' (RFC 4475 §3.1.2.14)."""
    with pytest.raises(ParseError, match="whitespace inside"):
        parse_address('"Watson, Thomas" < sip:t.watson@example.org >')


def test_bare_uri_parameters_are_header_parameters() -> None:
    """RFC 3261 §20: without '<>', parameters after the URI are header parameters."""
    bare = parse_address("sip:+19725552222@gw1.example.net;unknownparam;tag=1")
    assert dict(bare.params) == {"unknownparam": None, "tag": "1"}
    assert not bare.uri.params
    angle = parse_address("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert not angle.params
    assert dict(angle.uri.params) == {"unknownparam": None}


def test_bare_uri_with_question_mark_or_comma_must_be_enclosed() -> None:
    """RFC 3261 §20: a URI with ',', '?' or ';' must be in '<>' (RFC 4475 §3.1.2.13)."""
    with pytest.raises(ParseError, match=r"must be enclosed in '<>'"):
        parse_address("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    with pytest.raises(ParseError):
        parse_address("sip:us,er@example.com")
    kept = parse_address("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert kept.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_lws_around_semicolon_and_equals_in_header_params() -> None:
    """RFC 3261 §25.1: SEMI and EQUAL allow LWS on both sides."""
    addr = parse_address("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert addr.tag == "1918181833n"
    contact = parse_address(
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ;'
        "  secondparam ; q = 0.33"
    )
    assert dict(contact.params) == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}


def test_header_parameter_values_may_be_quoted_strings_or_hosts() -> None:
    """RFC 3261 §25.1: gen-value = token / host / quoted-string."""
    addr = parse_address('<sip:a@b.example>;x="a;b,c";y=[2001:db8::1];z=192.0.2.1')
    assert dict(addr.params) == {"x": '"a;b,c"', "y": "[2001:db8::1]", "z": "192.0.2.1"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<>",
        "<sip:a@b.example",
        "sip:a@b.example>",
        "<sip:a@b.example> junk",
        "<sip:a@b.example>;",
        "<sip:a@b.example>;=x",
        "<sip:a@b.example>;x=",
        "<sip:a@b.example>;x=a b",
        '<sip:a@b.example>;x="open',
        '"Bob" sip:bob@b.example',
        "Bob sip:bob@b.example",
        "<not a uri>",
        "<sip:a@b.example><sip:c@d.example>",
    ],
)
def test_malformed_addresses_raise_parse_error(text: str) -> None:
    """RFC 3261 §25.1: anything outside the name-addr / addr-spec grammar raises ParseError."""
    with pytest.raises(ParseError):
        addr = parse_address(text)
        addr.uri  # noqa: B018 - the URI is parsed on first access


def test_uri_is_parsed_on_first_access() -> None:
    """A proxy that only reads the tag never pays for the URI; a bad URI raises when read."""
    addr = parse_address("<sip:a@bad_host>;tag=1")
    assert addr.tag == "1"
    with pytest.raises(ParseError):
        addr.uri  # noqa: B018


def test_contact_star_is_the_wildcard() -> None:
    """RFC 3261 §10.2.2: 'Contact: *' is an Address with star set and no URI."""
    star = parse_contact(" * ")
    assert star.star and str(star) == "*"
    assert star == Address.any() and hash(star) == hash(Address.any())
    assert star != parse_contact("<sip:a@b.example>")
    with pytest.raises(LocalProtocolError):
        star.uri  # noqa: B018
    assert not parse_contact("<sip:a@b.example>").star


def test_equality_ignores_display_name_but_not_params() -> None:
    """Two addresses are equal when their URIs are equivalent and their parameters match."""
    a = parse_address('"A" <sip:alice@EXAMPLE.com>;tag=1')
    b = parse_address("<sip:alice@example.com>;TAG=1")
    assert a == b and hash(a) == hash(b)
    assert a != parse_address("<sip:alice@example.com>;tag=2")
    assert a != "sip:alice@example.com"


def test_constructed_address_prints_and_reparses() -> None:
    """Address(uri, display, params) quotes the display name only when it must."""
    uri = URI.parse("sip:bob@biloxi.example.com")
    assert str(Address(uri)) == "<sip:bob@biloxi.example.com>"
    assert str(Address(uri, "Bob")) == "Bob <sip:bob@biloxi.example.com>"
    assert (
        str(Address(uri, "Bob Smith", {"tag": "x"}))
        == "Bob Smith <sip:bob@biloxi.example.com>;tag=x"
    )
    quoted = Address(uri, 'Say "hi"\\ \x07, ok')
    assert str(quoted) == '"Say \\"hi\\"\\\\ \\\x07, ok" <sip:bob@biloxi.example.com>'
    assert parse_address(str(quoted)).display == 'Say "hi"\\ \x07, ok'
    assert str(Address(uri, "")) == '"" <sip:bob@biloxi.example.com>'
    assert str(Address("sip:a@b.example")) == "<sip:a@b.example>"
    assert repr(Address(uri)) == "Address('<sip:bob@biloxi.example.com>')"


def test_with_params_and_replace_build_changed_copies() -> None:
    """with_params(tag=...) adds the To tag of a response; the original is unchanged."""
    to = parse_address('"Bob" <sip:bob@biloxi.example.com>')
    tagged = to.with_params(tag="8321234356")
    assert tagged.tag == "8321234356" and to.tag is None
    assert str(tagged) == "Bob <sip:bob@biloxi.example.com>;tag=8321234356"
    moved = tagged.replace(uri=URI.parse("sip:bob@192.0.2.4"))
    assert str(moved) == "Bob <sip:bob@192.0.2.4>;tag=8321234356"
    assert (
        str(tagged.replace(display="Robert"))
        == "Robert <sip:bob@biloxi.example.com>;tag=8321234356"
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda u: Address(u, "a\r\nVia: x"),
        lambda u: Address(u, params={"tag": "a\r\nX: y"}),
        lambda u: Address(u, params={"tag": "a;b"}),
        lambda u: Address(u, params={"bad name": "x"}),
        lambda u: Address(u, params={"tag": ""}),
        lambda u: Address(u).with_params(tag="x y"),
        lambda u: Address(URI("sip", host="a\r\nb")),
        lambda u: Address(URI("sip", host="a>b")),
    ],
)
def test_constructor_refuses_parts_that_would_not_print_as_one_value(build: object) -> None:
    """Display names, parameters and URIs with CR/LF or separators raise LocalProtocolError."""
    uri = URI.parse("sip:a@b.example")
    with pytest.raises(LocalProtocolError):
        build(uri)  # type: ignore[operator]


def test_params_are_read_only_and_case_insensitive() -> None:
    """Params keep names lower-cased; lookups ignore case; changes go through copies."""
    params = Params({"tag": "1", "lr": None})
    assert params["TAG"] == "1" and "LR" in params and params.get("missing") is None
    assert str(params) == ";tag=1;lr"
    assert params.replace(Tag="2") == {"tag": "2", "lr": None}
    assert params.without("LR") == {"tag": "1"}
    assert hash(params) == hash(Params({"tag": "1", "lr": None}))
    with pytest.raises(TypeError):
        params["x"] = "y"
    with pytest.raises(KeyError):
        params["missing"]
    assert 42 not in params
