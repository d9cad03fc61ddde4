"""The management HTTP API and web console: upload, test and watch per-user scripts.

app.py          start_web / build_app: routes, middlewares, /openapi.json, /metrics
services.py     WebServices: the server's stores, script host and metrics, handed in
config.py       WebConfig: the [web] settings (listen, TLS, limits)
auth.py         Digest (the SIP accounts' H(A1)), Basic over TLS, bearer tokens
tokens.py       tokens and console sessions, stored hashed
scripts_api.py  a user's script: get, upload (checked), versions, rollback, delete
uploads.py      checking a source and writing it atomically into the scripts directory
calls_api.py    simulations in the real sandbox, the call log, /api/me, sign-in
admin_api.py    users, policy and overrides, scripts and quarantine, audit, tokens
overrides.py    per-domain policy overrides stored in the database
openapi.py      the route table and the OpenAPI document built from it
errors.py       JSON errors
limits.py       rate limits (token buckets, time passed in)
static/         the console: index.html, console.js, console.css (no build step)
"""
