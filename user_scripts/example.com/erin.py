# Find me / follow me: the desk for 15 s, then the mobile for 20 s, then voicemail.

STEPS = [
    ('sip:erin@desk.example.com', 15),
    ('sip:erin@mobile.example.com', 20),
]


@basic.on('incoming')
def incoming(event):
    for target, seconds in STEPS:
        result = event.action.proxy(location=target, timeout=seconds)
        log(target, result)
        if result == 'success':
            return
    event.action.voicemail()
