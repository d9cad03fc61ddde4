"""The sandbox that runs users' call scripts, and proves they stay contained.

    policy.py     the policy an administrator audits (sandbox/policy.toml) -> frozen rules
    compiler.py   static checks + RestrictedPython -> CompiledScript, or FILE:LINE:COL problems
    guards.py     what RestrictedPython's rewritten code calls: attribute, write, import guards
    values.py     URI, Header, EventTime: the read-only values a script sees
    api.py        basic, event, event.action, log: the objects a script holds
    call.py       one step's state behind them: the call's rules, proxy() replay
    targets.py    target, reason and log-text rules (sandbox side and SIP-process side)
    runner.py     one handler step with replay (a pure function of its inputs)
    worker.py     the worker process: OS limits, CPU timer, the step loop
    actions.py    typed actions, dispositions and step results (Proxy, Reject, Pending...)
    protocol.py   the JSON between pool and workers, its checks, the event data shape
    pool.py       the SIP process's side: worker pool, deadlines, restarts
    quarantine.py scripts that keep failing stop running for a while
    replay.py     CallRun: a call's outcomes, wall time and actions between steps
    simulate.py   run a script against a made-up request (callscript simulate, web API)

Nothing is imported here, so a worker loads only what it needs.
"""
