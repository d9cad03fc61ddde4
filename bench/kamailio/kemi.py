"""bench/proxy_load.py: native.cfg's routing written in Python for Kamailio's KEMI.

Loaded by app_python3 (bench/kamailio/kemi.cfg). Each Kamailio worker runs
``ksr_request_route`` for every request; the steps and their order match
native.cfg's request_route line by line, so the two configurations differ
only in the language the routing is written in.
"""

import KSR  # provided by app_python3 inside Kamailio

# KEMI return code that stops the routing ('exit' in the native language).
EXIT = 1


def _define(name):
    """The string value of a ``-A NAME="value"`` define, without its quotes."""
    value = KSR.kx.get_def(name)
    if not value:
        raise RuntimeError(f"kemi.py needs the define {name} (-A '{name}=\"...\"')")
    return value.strip('"')


def mod_init():
    """Called once by app_python3 before the workers fork: the routing object."""
    return Router()


class Router:
    """The request route of the benchmark proxy."""

    def __init__(self):
        self.uas = None
        self.user = None

    def child_init(self, rank):
        """Per worker: read the defines once, not per request."""
        self.uas = "sip:callee@" + _define("UAS")
        self.user = _define("BENCH_USER")
        return 0

    def ksr_request_route(self, msg):
        """RFC 3261 §16: validate, then route in-dialog or initial requests."""
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return EXIT
        if KSR.sanity.sanity_check(17895, 7) < 0:
            return EXIT

        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return EXIT

        # In-dialog requests (ACK for 2xx, BYE) follow the recorded route.
        if KSR.siputils.has_totag() > 0:
            if KSR.rr.loose_route() > 0:
                KSR.tm.t_relay()
                return EXIT
            if KSR.is_ACK():
                if KSR.tm.t_check_trans() > 0:
                    KSR.tm.t_relay()
                return EXIT
            KSR.sl.sl_send_reply(404, "Not here")
            return EXIT

        # Retransmissions of an initial request are absorbed by its transaction.
        if KSR.tm.t_check_trans() == 0:
            return EXIT

        KSR.hdr.remove("Route")
        if KSR.is_INVITE():
            KSR.rr.record_route()

        if KSR.pv.get("$rU") == self.user:
            KSR.pv.sets("$ru", self.uas)
            if KSR.tm.t_relay() < 0:
                KSR.sl.sl_reply_error()
            return EXIT
        KSR.sl.sl_send_reply(404, "Not Found")
        return EXIT
