"""Route preprocessing (RFC 3261 §16.4), next hop (§16.6 step 7) and strict routing (step 6)."""

from __future__ import annotations

from callscript.sip.message import Request, parse_message
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.proxy.route import (
    fix_strict_route,
    is_in_dialog,
    is_record_route_value,
    next_hop,
    preprocess_route,
)
from callscript.sip.uri import URI
from tests.sip.proxy.conftest import PROXY_HOST, request


def routes(message: object) -> list[str]:
    """The Route URIs of ``message``, top first."""
    return [str(a.uri) for a in message.get_all("Route")]  # type: ignore[attr-defined]


def test_strict_router_request_uri_is_replaced_by_the_last_route(config: ProxyConfig) -> None:
    """RFC 3261 §16.4: a Request-URI holding our Record-Route value takes the last Route value."""
    message = request(
        "BYE",
        f"sip:{PROXY_HOST}:5060;lr",
        to_tag="b",
        headers=[("Route", "<sip:next.example.net;lr>"), ("Route", "<sip:bob@192.0.2.21:5070>")],
    )
    preprocess_route(message, config)
    assert str(message.uri) == "sip:bob@192.0.2.21:5070"
    assert routes(message) == ["sip:next.example.net;lr"]


def test_strict_router_with_only_the_target_left_clears_route(config: ProxyConfig) -> None:
    """RFC 3261 §16.4: when the last Route value moves to the Request-URI, no Route is left."""
    message = request(
        "BYE", f"sip:{PROXY_HOST};lr", to_tag="b", headers=[("Route", "<sip:bob@192.0.2.21>")]
    )
    preprocess_route(message, config)
    assert str(message.uri) == "sip:bob@192.0.2.21"
    assert "Route" not in message


def test_request_for_a_user_at_our_address_is_not_taken_for_strict_routing(
    config: ProxyConfig,
) -> None:
    """RFC 3261 §16.4: only a value we put in Record-Route (no user, lr) means a strict router."""
    message = request(
        "INVITE", f"sip:alice@{PROXY_HOST}", headers=[("Route", f"<sip:{PROXY_HOST};lr>")]
    )
    preprocess_route(message, config)
    assert str(message.uri) == f"sip:alice@{PROXY_HOST}"
    assert "Route" not in message  # our loose Route went, as usual
    assert is_record_route_value(URI.parse(f"sip:{PROXY_HOST};lr"), config)
    assert not is_record_route_value(URI.parse(f"sip:{PROXY_HOST}"), config)
    assert not is_record_route_value(URI.parse(f"sip:alice@{PROXY_HOST};lr"), config)
    assert not is_record_route_value(URI.parse(f"sip:{PROXY_HOST}:5070;lr"), config)


def test_our_top_route_is_removed_and_the_next_one_kept(config: ProxyConfig) -> None:
    """RFC 3261 §16.4: the first Route value naming this proxy is removed (loose routing)."""
    raw = bytes(request("BYE", "sip:bob@192.0.2.21", to_tag="b")).replace(
        b"\r\n\r\n",
        f"\r\nRoute: <sip:{PROXY_HOST};lr>, <sip:other.example.net;lr>\r\n\r\n".encode(),
    )
    message = parse_message(raw)
    assert isinstance(message, Request)
    preprocess_route(message, config)
    assert str(message.uri) == "sip:bob@192.0.2.21"
    assert routes(message) == ["sip:other.example.net;lr"]


def test_both_of_our_routes_go_after_a_double_record_route(config: ProxyConfig) -> None:
    """RFC 3261 §16.4: after a double Record-Route two consecutive Route values name us."""
    message = request(
        "BYE",
        "sip:bob@192.0.2.21",
        to_tag="b",
        headers=[
            ("Route", f"<sip:{PROXY_HOST}:5060;transport=tcp;lr>"),
            ("Route", f"<sip:{PROXY_HOST};lr>"),
            ("Route", "<sip:other.example.net;lr>"),
        ],
    )
    preprocess_route(message, config)
    assert routes(message) == ["sip:other.example.net;lr"]


def test_a_route_of_another_host_or_port_is_kept(config: ProxyConfig) -> None:
    """RFC 3261 §16.4: a Route value that is not this proxy stays for the next hop."""
    message = request(
        "BYE",
        "sip:bob@192.0.2.21",
        to_tag="b",
        headers=[("Route", f"<sip:{PROXY_HOST}:5080;lr>")],
    )
    preprocess_route(message, config)
    assert routes(message) == [f"sip:{PROXY_HOST}:5080;lr"]


def test_next_hop_is_the_first_route_else_the_request_uri() -> None:
    """RFC 3261 §16.6 step 7: the first Route value decides the next hop, else the Request-URI."""
    with_route = request("BYE", "sip:bob@192.0.2.21", headers=[("Route", "<sip:a.example;lr>")])
    assert str(next_hop(with_route)) == "sip:a.example;lr"
    assert str(next_hop(request("BYE", "sip:bob@192.0.2.21"))) == "sip:bob@192.0.2.21"


def test_strict_next_hop_gets_the_request_uri_it_expects() -> None:
    """RFC 3261 §16.6 step 6: a first Route without lr becomes the Request-URI; ours goes last."""
    message = request(
        "BYE",
        "sip:bob@192.0.2.21",
        headers=[("Route", "<sip:strict.example.net>"), ("Route", "<sip:loose.example.net;lr>")],
    )
    fix_strict_route(message)
    assert str(message.uri) == "sip:strict.example.net"
    assert routes(message) == ["sip:loose.example.net;lr", "sip:bob@192.0.2.21"]


def test_loose_next_hop_leaves_the_request_alone() -> None:
    """RFC 3261 §16.6 step 6: with lr on the first Route nothing changes."""
    message = request("BYE", "sip:bob@192.0.2.21", headers=[("Route", "<sip:a.example;lr>")])
    fix_strict_route(message)
    assert str(message.uri) == "sip:bob@192.0.2.21"
    assert routes(message) == ["sip:a.example;lr"]
    bare = request("BYE", "sip:bob@192.0.2.21")
    fix_strict_route(bare)
    assert "Route" not in bare


def test_a_to_tag_means_in_dialog() -> None:
    """RFC 3261 §16.4: in-dialog requests (To tag) follow their Route set."""
    assert is_in_dialog(request("BYE", to_tag="x"))
    assert not is_in_dialog(request("INVITE"))
