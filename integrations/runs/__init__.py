"""Runs: work over many rows, each row's outcome recorded once, surviving restarts.

`sync` is the front door (start, retry, cancel, claim and resume runs; schedules); `engine`
works one slice of a Directus → Clay run from `sources` (pages of a saved query, or a run's
failed rows); `inbound` stores rows coming in (Clay, CSV uploads, relay events) and works the
runs over them: `writeback` writes them into Directus and `relay` sends Flow events on to Clay;
`roundtrip` traces one row across the round trip; `bulk` writes a window's results in one
INSERT, `causes` groups outcomes for people, `history` pages runs and results for the console
and the API.
"""
