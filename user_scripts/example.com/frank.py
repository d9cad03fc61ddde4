# Frank moved: send callers to his new address.


@basic.on('incoming')
def incoming(event):
    event.action.redirect(location=URI('sip:frank@newcompany.example.org'))
