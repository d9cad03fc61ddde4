# Outgoing rule: no calls to premium-rate numbers (user part starting 0900 or +44 9).

PREMIUM = ('0900', '+449', '1900')


@basic.on('outgoing')
def outgoing(event):
    number = (event.uri.user or '').replace('-', '')
    for prefix in PREMIUM:
        if number.startswith(prefix):
            log('premium number refused:', number)
            event.action.reject(code=403, reason='Premium numbers are blocked')
            return
    event.action.default()
