"""A SIP load balancer: new calls spread over a pool of servers, each dialog stays on its own.

Dispatch is round-robin (default) or by a hash of the Call-ID (SIP_DISPATCH=call-id,
which also suits stateless forwarding: a retransmission goes where the original
went). When the chosen server fails (503, timeout, unreachable) the call moves on
to the next one of the pool. The balancer record-routes, so in-dialog requests
(ACK, BYE, re-INVITE) come back through it and follow the route set.

Run:  SIP_BACKENDS=10.0.0.11:5060,10.0.0.12:5060 callscript run examples/load_balancer.py
The handler is ``async def``: every event.action call is awaited.

This is trusted code: it runs in the server process, unsandboxed.
"""

import itertools
import os
import zlib

from callscript.api import URI, basic, configure, log, open, run

HOST = os.environ.get("SIP_HOST", "")
PORT = int(os.environ.get("SIP_PORT", "5060"))
BACKENDS = [URI(f"sip:{hostport}") for hostport in os.environ["SIP_BACKENDS"].split(",")]
DISPATCH = os.environ.get("SIP_DISPATCH", "round-robin")
STATELESS = os.environ.get("SIP_STATELESS", "") == "1"

configure(domains=[os.environ.get("SIP_DOMAIN", "example.com")])
open((HOST, PORT))

# The script's own state: the next server in round-robin order.
turns = itertools.count()


def pool_from(first):
    """The pool starting at ``first``: the chosen server, then the others as failover."""
    return BACKENDS[first:] + BACKENDS[:first]


def choose(event):
    if DISPATCH == "call-id":
        return zlib.crc32(event.call_id.encode()) % len(BACKENDS)
    return next(turns) % len(BACKENDS)


async def route(event):
    if event.in_dialog:
        if await event.action.loose_route():
            await event.action.forward()
        else:
            await event.action.reply(404, "Not here")
        return
    if event.method == "OPTIONS" and event.is_self:
        await event.action.reply(200, "Keepalive")
        return
    index = choose(event)
    log(f"{event.method} call-id {event.call_id} -> backend {index} ({BACKENDS[index]})")
    await event.action.record_route()
    if STATELESS:
        await event.action.forward(next_hop=BACKENDS[index], stateless=True)
    else:
        await event.action.forward(next_hop=pool_from(index))


basic.addEventListener("incoming", route)

if __name__ == "__main__":
    run()
