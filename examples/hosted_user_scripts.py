"""Hosting per-user scripts the way `callscript serve` does, written out as a server script.

Registrar with digest authentication, authentication of callers from our domains
(unless they come from a trusted network), no open relay, the caller's
"outgoing" and the callee's "incoming" per-user script (sandboxed, hot reloaded
from the scripts directory), and the default routing when a user has no script
or its script asks for it: the registered contacts, forked by q-value.

An admin layer can narrow what user scripts do here: SIP_USER_ACTIONS=proxy,reject
lets them proxy and reject only; anything else they ask for comes back to this
script, which then routes the call as if they had no script.

Run:  callscript run examples/hosted_user_scripts.py   (or: python examples/hosted_user_scripts.py)
This script is trusted code; the per-user scripts it runs are not.
"""

# callscript.api's names come by *; its open() listens for SIP and opens no file.
# ruff: noqa: F403, F405, SIM115
import os

from callscript.api import *

HOST = os.environ.get("SIP_HOST", "")
PORT = int(os.environ.get("SIP_PORT", "5060"))
ALLOWED = os.environ.get("SIP_USER_ACTIONS")
USER_ACTIONS = ALLOWED.split(",") if ALLOWED else None  # None: everything the sandbox allows

configure(
    domains=os.environ.get("SIP_DOMAINS", "example.com").split(","),
    database=os.environ.get("SIP_DB", "callscript.db"),
    auth_algorithms=os.environ.get("SIP_AUTH", "SHA-256,MD5").split(","),
    scripts_enabled=True,
    scripts_dir=os.environ.get("SIP_SCRIPTS", "user_scripts"),
    voicemail=os.environ.get("SIP_VOICEMAIL", "sip:{user}@voicemail.{domain}"),
)
open((HOST, PORT))

ALLOW = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "MESSAGE", "REFER"]


def route(event):
    if event.in_dialog:
        if event.action.loose_route():
            event.action.forward()
        else:
            event.action.reply(481)  # nothing left to route on: the dialog is not ours
        return
    if event.method == "REGISTER":
        register(event)
        return
    if event.is_self:
        if event.method == "OPTIONS":
            event.action.reply(200, headers=[("Allow", ALLOW)])
        else:
            event.action.reply(405, headers=[("Allow", ["OPTIONS", "REGISTER"])])
        return
    if event.from_us and not event.trusted and not authenticated(event):
        return
    if not (event.for_us or event.from_us or event.trusted):
        event.action.reply(403, "Relaying denied")
        return
    event.action.record_route()
    if event.from_us and event.action.user_script("outgoing", allow=USER_ACTIONS) == "done":
        return
    if not event.for_us:
        event.action.forward()  # to another domain
        return
    if event.action.user_script("incoming", allow=USER_ACTIONS) == "done":
        return
    if event.action.lookup():
        event.action.forward()
    else:
        event.action.reply(404)


def register(event):
    if not event.for_us:
        event.action.reply(403, "Not a domain served here")
        return
    credentials = event.action.verify()
    if credentials.status == "malformed":
        event.action.reply(400, "Bad Authorization")
    elif credentials.status == "mismatch":
        event.action.reply(403, "Authenticated user may not register this address-of-record")
    elif not credentials:
        event.action.challenge()
    else:
        event.action.save()


def authenticated(event):
    """A caller claiming our domain proves it (407), unless the script answered otherwise."""
    credentials = event.action.verify()
    if credentials:
        return True
    if credentials.status == "malformed":
        event.action.reply(400, "Bad Proxy-Authorization")
    elif credentials.status == "mismatch":
        event.action.reply(403, "Authenticated user does not match From")
    else:
        event.action.challenge()
    return False


basic.addEventListener("incoming", route)
run()
