"""Server scripts: the server's whole routing written by its administrator in Python.

``from callscript.api import *`` gives a script ``open``, ``configure``,
``basic``, ``run``, ``log`` and ``URI``; ``callscript run SCRIPT.py`` (or
``python SCRIPT.py``) runs it. Unlike per-user scripts it is trusted code and
is not sandboxed.

- ``program.py``: :class:`Program`, one run: listeners, settings, the handler,
  and the engine's Server it starts with the script's router in place.
- ``current.py``: how ``callscript.api`` finds the program of its run (a
  ContextVar: the one deliberate piece of ambient state) and ``run_script``.
- ``router.py``: :class:`ScriptRouter`, the serve router whose ``route`` calls the
  handler (async on the loop, blocking in a worker thread) and settles what it
  leaves undecided.
- ``event.py``: the ``event`` a handler gets; ``actions.py``: ``event.action``
  (coroutines); ``bridge.py``: the same as blocking calls.
- ``forwarding.py``: targets, Record-Route, stateless copies; ``registrar.py``:
  save, lookup, verify, challenge; ``usercall.py``: running (and narrowing) the
  per-user scripts; ``call.py``: per-request state and small values.
"""
