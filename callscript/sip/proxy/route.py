"""Route information preprocessing and next-hop choice (RFC 3261 §16.4, §16.6 steps 6-7, §16.12)."""

from __future__ import annotations

from typing import cast

from callscript.sip.address import Address
from callscript.sip.message import Request
from callscript.sip.proxy.config import ProxyConfig
from callscript.sip.uri import URI


def preprocess_route(request: Request, config: ProxyConfig) -> None:
    """Apply RFC 3261 §16.4 to a received request, in place.

    - The Request-URI is a value we placed in a Record-Route (the previous hop is
      a strict router): replace it with the last Route value and remove that value.
    - The first Route value is us: remove it (loose routing), twice after a
      double Record-Route.

    Raises:
        ParseError: a Route value cannot be read.
    """
    routes = cast(list[Address], request.get_all("Route"))
    # RFC 3261 §16.4: a Request-URI holding our Record-Route value came from a strict router.
    if routes and is_record_route_value(request.uri, config):
        request.uri = routes[-1].uri
        routes = routes[:-1]
        _set_routes(request, routes)
    # RFC 3261 §16.4: the top Route naming this proxy is removed (both, after double Record-Route).
    while routes and config.is_local(routes[0].uri):
        request.pop("Route")
        routes = routes[1:]


def is_record_route_value(uri: URI, config: ProxyConfig) -> bool:
    """Whether ``uri`` looks like a value we put in Record-Route: us, no user, ``lr``.

    A request for a user at our address (``sip:alice@<our IP>``) is not one.
    """
    return config.is_local(uri) and not uri.user and uri.lr


def _set_routes(request: Request, routes: list[Address]) -> None:
    request.discard("Route")
    if routes:
        request["Route"] = routes


def next_hop(request: Request) -> URI:
    """RFC 3261 §16.6 step 7: the first Route value if any, else the Request-URI.

    ``maddr`` is left for the resolver (RFC 3263 §4 uses it in place of the host).
    """
    routes = request.get_all("Route")
    if routes:
        return cast(Address, routes[0]).uri
    return request.uri


def fix_strict_route(request: Request) -> None:
    """RFC 3261 §16.6 step 6: the next hop is a strict router (first Route without ``lr``).

    The Request-URI goes to the end of the Route set and the first Route value
    becomes the Request-URI.
    """
    routes = cast(list[Address], request.get_all("Route"))
    if not routes or routes[0].uri.lr:
        return
    old_uri = request.uri
    request.uri = routes[0].uri
    _set_routes(request, [*routes[1:], Address(old_uri)])


def is_in_dialog(request: Request) -> bool:
    """A request with a To tag belongs to a dialog (RFC 3261 §12.2)."""
    return request.to_addr.tag is not None
