# Ring the desk phone; on busy, no answer or failure, voicemail.
# Callers from outside example.com are declined.


def screen(event):
    if event['From'].uri.host.endswith('example.com'):
        event.location = URI('sip:alice@desk.example.com')
        if event.action.proxy(timeout=15) in ('busy', 'noanswer', 'failure'):
            event.action.voicemail()
    else:
        event.action.reject(code=603, reason='Decline')


basic.addEventListener('incoming', screen)
