# Office hours (Monday to Friday, 9:00-17:59) ring the desk; otherwise the mobile,
# then voicemail.

DESK = 'sip:carol@desk.example.com'
MOBILE = 'sip:carol@mobile.example.com'


def office_hours(time):
    return time.weekday < 5 and 9 <= time.hour < 18


@basic.on('incoming')
def incoming(event):
    if office_hours(event.time):
        log('office hours:', event.time.date, event.time.hour)
        event.location = DESK
    else:
        result = event.action.proxy(location=MOBILE, timeout=25)
        if result != 'success':
            event.action.voicemail()
