"""Kamailio's default routing (kamailio.cfg with WITH_AUTH and WITH_IPAUTH), as a server script.

The route blocks keep Kamailio's names: REQINIT (sanity checks), WITHINDLG
(loose routing within dialogs), AUTH (digest for REGISTER and for callers of our
domain, no open relay), SIPOUT (other domains), REGISTRAR, LOCATION and RELAY.
Left out, as in a kamailio.cfg without those defines: NAT traversal, presence,
accounting, voicemail and PSTN routing. Record-Route goes on INVITE and SUBSCRIBE.

Run:  callscript run examples/kamailio_default.py   (or: python examples/kamailio_default.py)
Add users first:  callscript users add alice@example.com --password ... --db callscript.db
The environment variables below override the settings (the tests use them).

This is trusted code: it runs in the server process, unsandboxed.
"""

import os

from callscript.api import basic, configure, open, run

HOST = os.environ.get("SIP_HOST", "")  # '' listens on every IPv4 address
PORT = int(os.environ.get("SIP_PORT", "5060"))
DOMAIN = os.environ.get("SIP_DOMAIN", "example.com")
DATABASE = os.environ.get("SIP_DB", "callscript.db")
# allow_source_address(): requests from these networks need no digest (REGISTER always does).
TRUSTED = tuple(n for n in os.environ.get("SIP_TRUSTED", "127.0.0.0/8,::1/128").split(",") if n)

# Kamailio 3.x REQINIT answered messages of 4096 bytes or more with 513.
MAX_SIZE = 4096

configure(
    domains=[DOMAIN],
    database=DATABASE,
    trusted_networks=TRUSTED,
    auth_algorithms=["MD5"],  # what Kamailio's auth_db module offers
)
open((HOST, PORT))


def route(event):
    """request_route: every request starts here."""
    if not reqinit(event):
        return
    if event.in_dialog:
        withindlg(event)
        return
    if not auth(event):
        return
    # Preloaded Route values are not followed for initial requests (our own were removed already).
    del event["Route"]
    if event.method in ("INVITE", "SUBSCRIBE"):
        event.action.record_route()
    if not event.for_us:
        sipout(event)
        return
    if event.method in ("PUBLISH", "SUBSCRIBE"):
        event.action.reply(404, "Not here")  # no presence server here
        return
    if event.method == "REGISTER":
        registrar(event)
        return
    if event.uri.user is None:
        event.action.reply(484, "Address Incomplete")
        return
    location(event)


def reqinit(event):
    """Per-request initial checks; False when the request got its answer here.

    Before route() runs the proxy core already answered what sanity_check() would
    refuse: bad syntax (400), an unknown URI scheme (416), Proxy-Require (420),
    loops (482); and the transport answered 513 to messages over max_message_size.
    """
    # mf_process_maxfwd_header: the core also answers Max-Forwards 0 with 483, except an
    # OPTIONS for this server, which the keepalive below answers (RFC 3261 §16.3 allows it).
    if event.max_forwards == 0 and not (event.method == "OPTIONS" and event.is_self):
        event.action.reply(483, "Too Many Hops")
        return False
    if event.size >= MAX_SIZE:
        event.action.reply(513, "Message too big")
        return False
    if event.method == "OPTIONS" and event.is_self:
        event.action.reply(200, "Keepalive")
        return False
    return True


def withindlg(event):
    """Sequential requests follow the path record-routing set up."""
    if event.action.loose_route():
        if event.method == "NOTIFY":
            event.action.record_route()
        relay(event)
        return
    # ACKs never come here: the core absorbs those of error answers and forwards those of 2xx.
    event.action.reply(404, "Not here")


def auth(event):
    """Digest for REGISTER and for callers claiming our domain; never an open relay."""
    if event.method != "REGISTER" and event.trusted:
        return True  # allow_source_address()
    if event.method == "REGISTER" or event.from_us:
        credentials = event.action.verify()
        if not credentials:
            event.action.challenge()  # auth_challenge("$fd", "0"): 401 for REGISTER, else 407
            return False
        if event.method not in ("REGISTER", "PUBLISH"):
            del event["Proxy-Authorization"]  # consume_credentials()
    if not event.from_us and not event.for_us:
        event.action.reply(403, "Not relaying")
        return False
    return True


def sipout(event):
    """Requests for other domains go there."""
    event["P-Hint"] = "outbound"
    relay(event)


def registrar(event):
    """save("location"): the store answers 200 with the bindings, or the error."""
    event.action.save()


def location(event):
    """lookup("location"): the user's registered contacts, else 404."""
    if not event.action.lookup():
        event.action.reply(404, "Not Found")
        return
    relay(event)


def relay(event):
    """t_relay(): stateful forwarding; forward() answers 404/480 itself when nothing resolves."""
    event.action.forward()


basic.addEventListener("incoming", route)

if __name__ == "__main__":
    run()
