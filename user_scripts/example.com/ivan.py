# Ivan's script answers OPTIONS pings itself and logs MESSAGEs before they go on.


@basic.on('incoming')
def incoming(event):
    if event.method == 'OPTIONS':
        event.action.accept()
    elif event.method == 'MESSAGE':
        subject = event['Subject']
        log('message', subject.value if subject else '(no subject)')
