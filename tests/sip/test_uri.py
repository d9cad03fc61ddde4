"""URIs: parsing each part, printing back, comparison (RFC 3261 §19.1), changed copies."""

from __future__ import annotations

import ipaddress

import pytest

from callscript.sip.abnf import normalize_escapes, unescape
from callscript.sip.errors import LocalProtocolError, ParseError
from callscript.sip.uri import URI, ip_literal, is_ipv6_reference, parse_uri

# -- parsing -------------------------------------------------------------------------------


def test_sip_uri_parts_are_read_as_written() -> None:
    """RFC 3261 §19.1.1: user, password, host, port, parameters and headers."""
    uri = parse_uri("sip:alice:secret@Atlanta.example.com:5070;transport=TCP;lr?subject=hi&x=")
    assert (uri.scheme, uri.user, uri.password) == ("sip", "alice", "secret")
    assert (uri.host, uri.port) == ("Atlanta.example.com", 5070)
    assert dict(uri.params) == {"transport": "TCP", "lr": None}
    assert uri.headers == (("subject", "hi"), ("x", ""))
    assert uri.transport == "tcp" and uri.lr and uri.maddr is None
    assert uri.host_key == "atlanta.example.com"
    assert str(uri) == "sip:alice:secret@Atlanta.example.com:5070;transport=TCP;lr?subject=hi&x="


def test_sips_scheme_is_secure_and_case_insensitive() -> None:
    """RFC 3261 §19.1.1: the scheme is case-insensitive; sips: asks for TLS."""
    uri = parse_uri("SIPS:bob@example.com")
    assert uri.scheme == "sips" and uri.secure and uri.is_sip
    assert str(uri) == "SIPS:bob@example.com"


def test_uri_without_user_has_none() -> None:
    """RFC 3261 §19.1.1: a URI may name only a host."""
    uri = parse_uri("sip:example.com")
    assert uri.user is None and uri.password is None and uri.port is None


def test_empty_password_is_not_an_absent_one() -> None:
    """RFC 3261 §25.1: password = *( ... ), so 'user:@host' has an empty password."""
    assert parse_uri("sip:user:@example.com").password == ""
    assert parse_uri("sip:user:@example.com") != parse_uri("sip:user@example.com")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:a@192.0.2.1", "192.0.2.1", None),
        ("sip:a@192.0.2.1:5060", "192.0.2.1", 5060),
        ("sip:a@[2001:db8::1]", "[2001:db8::1]", None),
        ("sip:a@[2001:db8::1]:5061", "[2001:db8::1]", 5061),
        ("sip:a@[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", None),
        ("sip:a@host-1.example.com.", "host-1.example.com.", None),
        ("sip:a@3com.example", "3com.example", None),
        ("sip:a@h:0", "h", 0),
        ("sip:a@h:65535", "h", 65535),
    ],
)
def test_host_forms(text: str, host: str, port: int | None) -> None:
    """RFC 3261 §25.1: host = hostname / IPv4address / IPv6reference."""
    uri = parse_uri(text)
    assert (uri.host, uri.port) == (host, port)


@pytest.mark.parametrize(
    "text",
    [
        "sip:a@192.0.2.300",  # an octet above 255
        "sip:a@example.123",  # a toplabel must start with a letter
        "sip:a@-bad.example",
        "sip:a@bad-.example",
        "sip:a@under_score.example",
        "sip:a@h:65536",
        "sip:a@h:",
        "sip:a@h:5o60",
        "sip:a@h:٥٠٦٠",  # non-ASCII digits
        "sip:a@[2001:db8::1",  # unclosed
        "sip:a@[2001:db8::1]x",
        "sip:a@[2001:db8::g]",
        "sip:a@[1:2:3:4:5:6:7:8:9]",
        "sip:a@[]",
        "sip:a@",
        "sip:",
    ],
)
def test_bad_hosts_and_ports_are_refused(text: str) -> None:
    """RFC 3261 §25.1: hosts and ports outside the grammar raise ParseError."""
    with pytest.raises(ParseError):
        parse_uri(text)


def test_ipv6_address_without_brackets_is_refused_by_name() -> None:
    """RFC 5118 §4.2: an IPv6 address in a SIP URI must be enclosed in '[' and ']'."""
    with pytest.raises(ParseError, match=r"IPv6 address without '\[ \]'"):
        parse_uri("sip:2001:db8::10")


def test_ipv6_port_inside_the_brackets_belongs_to_the_address() -> None:
    """RFC 5118 §4.3: [2001:db8::10:5070] is an address with no port."""
    uri = parse_uri("sip:[2001:db8::10:5070]")
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)
    assert parse_uri("sip:[2001:db8::10]:5070").port == 5070


def test_rfc3261_abnf_bug_three_colons_before_ipv4_is_tolerated() -> None:
    """RFC 5118 §4.10: '[2001:db8:::192.0.2.1]' (RFC 3261's ABNF slip) is accepted."""
    assert parse_uri("sip:user@[2001:db8:::192.0.2.1]").host == "[2001:db8:::192.0.2.1]"
    assert is_ipv6_reference("[2001:db8:::192.0.2.1]")
    assert is_ipv6_reference("[2001:db8::192.0.2.1]")
    # Only that slip: three colons before a hex group, or before a bad IPv4, stay wrong.
    assert not is_ipv6_reference("[2001:db8:::1]")
    assert not is_ipv6_reference("[2001:db8:::192.0.2.300]")
    assert not is_ipv6_reference("[1:2:3:4:5:6:7:::192.0.2.1]")


@pytest.mark.parametrize(
    "text",
    [
        "sip:@example.com",  # '@' with an empty user
        "sip:us er@example.com",
        "sip:user@exa mple.com",
        "sip:user\r\n@example.com",
        "sip:user\x00@example.com",
        "sip:us%G0r@example.com",  # not an escape
        "sip:us%4@example.com",
        "sip:user:pa@ss@example.com",
        "sip:user:p;w@example.com",  # ';' is not a password character
        "sip:us<er@example.com",
        "sip:user@example.com;",  # empty parameter
        "sip:user@example.com;a=b=c",
        "sip:user@example.com;a=",
        "sip:user@example.com;%zz",
        "sip:user@example.com?",  # empty header
        "sip:user@example.com?a",  # header without '='
        "sip:user@example.com?=b",
        "sip:user@example.com?a=b&",
        "sip:user@example.com?a=<b>",
        "<sip:user@example.com>",
        "user@example.com",
        "1sip:user@example.com",
        ":user@example.com",
    ],
)
def test_malformed_uris_raise_parse_error(text: str) -> None:
    """RFC 3261 §25.1: user, password, uri-parameter and header characters are limited."""
    with pytest.raises(ParseError):
        parse_uri(text)


def test_user_part_may_hold_semicolons_and_escapes() -> None:
    """RFC 4475 §3.1.1.9: ';' inside userinfo is part of the user, not a parameter."""
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert unescape(uri.user) == "user;par=u@example.net"
    assert not uri.params


def test_uri_parameter_names_are_lower_cased_and_values_kept() -> None:
    """RFC 3261 §19.1.4: parameter names compare case-insensitively; values are kept."""
    uri = parse_uri("sip:h;Transport=TCP;MAddr=239.255.255.1;TTL=15;Method=INVITE;User=phone")
    assert dict(uri.params) == {
        "transport": "TCP",
        "maddr": "239.255.255.1",
        "ttl": "15",
        "method": "INVITE",
        "user": "phone",
    }
    assert uri.params["TRANSPORT"] == "TCP" and "Ttl" in uri.params


def test_tel_uri_number_and_parameters() -> None:
    """RFC 3966 §3: a tel URI holds a number and ;name=value parameters."""
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com;ext=12")
    assert uri.scheme == "tel" and not uri.is_sip
    assert uri.user == "+1-201-555-0123"
    assert dict(uri.params) == {"phone-context": "example.com", "ext": "12"}
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com;ext=12"
    assert uri.aor == "tel:+1-201-555-0123"
    for bad in ("tel:", "tel:;ext=1", "tel:+1 2", "tel:+1;", "tel:+1<2"):
        with pytest.raises(ParseError):
            parse_uri(bad)


def test_other_schemes_are_kept_as_opaque_text() -> None:
    """RFC 4475 §3.3.2: an unknown scheme is a valid absolute URI, kept as written."""
    uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert (uri.scheme, uri.opaque) == ("nobodyknowsthisscheme", "totallyopaquecontent")
    assert str(uri) == "nobodyKnowsThisScheme:totallyopaquecontent"
    assert parse_uri("soap.beep://192.0.2.103:3002").opaque == "//192.0.2.103:3002"
    assert parse_uri("urn:service:sos").aor == "urn:service:sos"
    for bad in ("http:", "http:a b", "http:<x>", "ht_tp:x"):
        with pytest.raises(ParseError):
            parse_uri(bad)


def test_uri_parse_classmethod_and_repr() -> None:
    """URI.parse is parse_uri; repr shows the text."""
    uri = URI.parse("sip:a@b.example")
    assert repr(uri) == "URI('sip:a@b.example')"


def test_aor_drops_port_parameters_and_headers() -> None:
    """The address-of-record key is scheme:user@host, user unescaped, host lower-cased."""
    assert (
        parse_uri("sip:%61lice@Example.COM:5070;transport=tcp?x=y").aor == "sip:alice@example.com"
    )
    assert parse_uri("sips:Example.COM").aor == "sips:example.com"


def test_ip_literal_reads_numeric_hosts_only() -> None:
    """ip_literal() gives the address of a numeric host, None for a name."""
    assert ip_literal("192.0.2.1") == ipaddress.ip_address("192.0.2.1")
    assert ip_literal("[2001:db8::1]") == ipaddress.ip_address("2001:db8::1")
    assert ip_literal("example.com") is None


# -- escapes ---------------------------------------------------------------------------------


def test_unescape_decodes_once_and_keeps_nul() -> None:
    """RFC 3261 §19.1.2: %HH decodes once; %00 does not truncate (RFC 4475 §3.1.1.4)."""
    assert unescape("null-%00-null") == "null-\x00-null"
    assert unescape("value%2541") == "value%41"
    assert unescape("%E5%A4%A7") == "大"
    assert unescape("%ff") != unescape("%fe")  # stray bytes stay distinct
    assert unescape("no-escapes") == "no-escapes"
    assert unescape("%zz%4") == "%zz%4"  # not escapes: kept as written


def test_normalized_escapes_keep_reserved_characters_escaped() -> None:
    """RFC 3261 §19.1.4: escapes of unreserved characters decode; reserved ones stay escaped."""
    assert normalize_escapes("%61lice") == "alice"
    assert normalize_escapes("a%3bb") == "a%3Bb"
    assert normalize_escapes("a%40b") == "a%40b"
    assert normalize_escapes("%25") == "%25"
    assert normalize_escapes("%c3%a9") == "%C3%A9"


# -- comparison (RFC 3261 §19.1.4) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
    ],
)
def test_rfc3261_equivalent_uri_examples(a: str, b: str) -> None:
    """RFC 3261 §19.1.4: the section's examples of equivalent URIs compare equal."""
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub and ub == ua
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ],
)
def test_rfc3261_non_equivalent_uri_examples(a: str, b: str) -> None:
    """RFC 3261 §19.1.4: the section's examples of different URIs compare unequal."""
    assert parse_uri(a) != parse_uri(b)
    assert parse_uri(b) != parse_uri(a)


def test_uri_equality_is_not_transitive() -> None:
    """RFC 3261 §19.1.4: security=on and security=off each match the bare URI, not each other."""
    bare = parse_uri("sip:carol@chicago.com")
    on = parse_uri("sip:carol@chicago.com;security=on")
    off = parse_uri("sip:carol@chicago.com;security=off")
    assert bare == on and bare == off and on != off


def test_sip_and_sips_are_never_equivalent() -> None:
    """RFC 3261 §19.1.4: a SIP and a SIPS URI are never equivalent."""
    assert parse_uri("sip:a@example.com") != parse_uri("sips:a@example.com")


def test_userinfo_compares_case_sensitively() -> None:
    """RFC 3261 §19.1.4: userinfo (user and password) is case-sensitive."""
    assert parse_uri("sip:Alice@h") != parse_uri("sip:alice@h")
    assert parse_uri("sip:a:Pw@h") != parse_uri("sip:a:pw@h")
    assert parse_uri("sip:a:pw@h") != parse_uri("sip:a@h")
    assert parse_uri("sip:a@h") != parse_uri("sip:h")


def test_escaped_unreserved_characters_equal_the_characters() -> None:
    """RFC 3261 §19.1.4: characters outside 'reserved' equal their %HH encoding."""
    assert parse_uri("sip:%61lice@h") == parse_uri("sip:alice@h")
    assert parse_uri("sip:%61lice@h") == parse_uri("sip:%61lice@h")
    assert parse_uri("sip:I%20have%20spaces@h") == parse_uri("sip:I%20have%20spaces@h")
    assert parse_uri("sip:a%3bb@h") == parse_uri("sip:a%3Bb@h")  # hex case does not matter
    # A reserved character and its escape are different userinfo.
    assert parse_uri("sip:a%3Bb@h") != parse_uri("sip:a;b@h")
    assert parse_uri("sip:sips%3Auser%40example.com@example.net") == parse_uri(
        "sip:sips%3auser%40example.com@example.net"
    )


def test_escapes_decode_once_in_parameters() -> None:
    """RFC 4475 §3.1.1.3: value%2541 decodes to value%41, never to valueA."""
    escaped = parse_uri("sip:caller@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert escaped == parse_uri("sip:caller@host5.example.net;lr;name=value%2541")
    assert escaped != parse_uri("sip:caller@host5.example.net;lr;name=valueA")


def test_host_compares_case_insensitively_and_port_must_match() -> None:
    """RFC 3261 §19.1.4: hosts compare case-insensitively; an omitted port is not 5060."""
    assert parse_uri("sip:a@EXAMPLE.com") == parse_uri("sip:a@example.COM")
    assert parse_uri("sip:a@[2001:DB8::1]") == parse_uri("sip:a@[2001:db8::1]")
    assert parse_uri("sip:a@h:5060") != parse_uri("sip:a@h")
    assert parse_uri("sips:a@h:5061") != parse_uri("sips:a@h")


@pytest.mark.parametrize("name", ["user", "ttl", "method", "maddr", "transport"])
def test_some_parameters_must_match_even_when_only_one_uri_has_them(name: str) -> None:
    """RFC 3261 §19.1.4: user, ttl, method, maddr (and transport) in only one URI never match."""
    value = {
        "user": "phone",
        "ttl": "1",
        "method": "INVITE",
        "maddr": "239.1.1.1",
        "transport": "udp",
    }[name]
    assert parse_uri("sip:a@h") != parse_uri(f"sip:a@h;{name}={value}")
    assert parse_uri(f"sip:a@h;{name}={value}") == parse_uri(
        f"sip:a@h;{name.upper()}={value.upper()}"
    )


def test_parameters_in_both_uris_must_match() -> None:
    """RFC 3261 §19.1.4: any uri-parameter appearing in both URIs must match."""
    assert parse_uri("sip:a@h;foo=1") != parse_uri("sip:a@h;foo=2")
    assert parse_uri("sip:a@h;foo") != parse_uri("sip:a@h;foo=1")
    assert parse_uri("sip:a@h;foo=1") == parse_uri("sip:a@h;bar=2")
    assert parse_uri("sip:a@h;lr") == parse_uri("sip:a@h")


def test_headers_are_never_ignored() -> None:
    """RFC 3261 §19.1.4: every header component must be present in both URIs and match."""
    assert parse_uri("sip:a@h?x=1") != parse_uri("sip:a@h")
    assert parse_uri("sip:a@h?x=1") != parse_uri("sip:a@h?x=2")
    assert parse_uri("sip:a@h?x=1&x=1") != parse_uri("sip:a@h?x=1")
    assert parse_uri("sip:a@h?X=%31") == parse_uri("sip:a@h?x=1")


def test_tel_uris_compare_by_number_without_separators() -> None:
    """RFC 3966 §4: visual separators do not count; every parameter must be in both."""
    a = parse_uri("tel:+1-201-555-0123")
    b = parse_uri("tel:+1.201.555.0123")
    assert a == b and hash(a) == hash(b)
    assert parse_uri("tel:+12015550123;ext=1") != a
    assert parse_uri("tel:+12015550123;EXT=1") == parse_uri("tel:+12015550123;ext=1")
    assert parse_uri("tel:+12015550124") != a


def test_opaque_uris_compare_by_text_with_escapes_decoded() -> None:
    """RFC 3261 §19.1.4: an escaped unreserved character equals itself in other schemes too."""
    assert parse_uri("urn:%61bc") == parse_uri("URN:abc")
    assert hash(parse_uri("urn:%61bc")) == hash(parse_uri("URN:abc"))
    assert parse_uri("urn:abc") != parse_uri("urn:ABC")
    assert parse_uri("urn:abc") != parse_uri("tel:+1")


def test_comparison_with_strings_and_other_types() -> None:
    """A URI compares with URI text; unparseable text and other types are simply unequal."""
    uri = parse_uri("sip:a@h")
    assert uri == "sip:a@H"
    assert uri != "not a uri"
    assert uri != 42
    assert {uri, parse_uri("sip:a@H")} == {uri}


# -- changed copies ----------------------------------------------------------------------------


def test_replace_changes_one_part_and_prints_it() -> None:
    """uri.replace() builds a changed copy; the original is untouched."""
    uri = parse_uri("sip:alice@atlanta.example.com;transport=tcp")
    moved = uri.replace(host="[2001:db8::1]", port=5070)
    assert str(moved) == "sip:alice@[2001:db8::1]:5070;transport=tcp"
    assert str(uri) == "sip:alice@atlanta.example.com;transport=tcp"
    assert str(uri.replace(scheme="SIPS")) == "sips:alice@atlanta.example.com;transport=tcp"
    assert str(uri.replace(params={"lr": None})) == "sip:alice@atlanta.example.com;lr"
    with pytest.raises(TypeError):
        uri.replace(nonsense=1)


def test_with_params_and_without_params() -> None:
    """with_params() adds or replaces URI parameters; without_params() drops them."""
    uri = parse_uri("sip:proxy.example.com;transport=udp")
    assert str(uri.with_params(lr=None)) == "sip:proxy.example.com;transport=udp;lr"
    assert str(uri.with_params(Transport="tcp")) == "sip:proxy.example.com;transport=tcp"
    assert str(uri.without_params("TRANSPORT")) == "sip:proxy.example.com"
    with pytest.raises(TypeError):
        uri.params["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    "bad", ["a\r\nVia: x", "a\nb", "a b", "a\tb", "a\x00b", "a\x7fb", "é", "\ud800"]
)
def test_replace_and_with_params_refuse_cr_lf_and_whitespace(bad: str) -> None:
    """A changed URI must still be one URI: CR, LF, SP and controls raise LocalProtocolError."""
    uri = parse_uri("sip:a@h")
    with pytest.raises(LocalProtocolError):
        uri.replace(user=bad)
    with pytest.raises(LocalProtocolError):
        uri.with_params(x=bad)
    with pytest.raises(LocalProtocolError):
        uri.replace(headers=(("subject", bad),))


def test_tel_and_opaque_uris_print_after_replace() -> None:
    """Changed tel and opaque URIs print in their own syntax."""
    assert str(parse_uri("tel:+1").with_params(ext="2")) == "tel:+1;ext=2"
    assert str(parse_uri("urn:a").replace(opaque="b")) == "urn:b"


def test_constructed_uri_prints_its_parts() -> None:
    """URI(...) keyword construction prints a parseable URI."""
    uri = URI("sip", user="bob", host="biloxi.example.com", port=5060, params={"lr": None})
    assert str(uri) == "sip:bob@biloxi.example.com:5060;lr"
    assert parse_uri(str(uri)) == uri
