# Calls from partner.example.net ring bob's phones; everyone else goes straight to voicemail.

PARTNER = 'partner.example.net'


@basic.on('incoming')
def incoming(event):
    caller = event['From'].uri
    if caller.host == PARTNER:
        log('partner call from', caller.user)
        event.action.proxy(timeout=20)
    else:
        event.action.voicemail()
