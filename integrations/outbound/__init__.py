"""Outbound: every request Kiln makes to a URL a user entered, and nothing else of Kiln.

`http` is the one path out (timeouts, size cap, the connect-time SSRF guard, redaction of
secrets in logs, kept-alive webhook posts); `allowlist` reads and checks what an admin may
open in that guard; `ratelimit` is the per-destination pace shared by every worker (Redis).
This package imports nothing else of the project: the guard learns the allowlist through a
hook the app sets at start-up.
"""
