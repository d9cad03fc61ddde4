# A screening list: listed callers are declined (603), everyone else rings as usual.

BLOCKED = {
    'sip:spam@telemarketing.example.org',
    'sip:ex@example.net',
}


@basic.on('incoming')
def incoming(event):
    caller = event['From'].uri.aor
    if caller in BLOCKED:
        log('blocked', caller)
        event.action.reject(code=603, reason='Decline')
