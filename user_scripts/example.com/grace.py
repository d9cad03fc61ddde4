# Grace is away: every call is turned down with a clear reason.


@basic.on('incoming')
def incoming(event):
    event.action.reject(code=480, reason='Away until Monday')
