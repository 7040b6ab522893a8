"""Clay: rows to Clay's webhooks and rows from Clay's exports.

`webhook` posts one JSON row to a table's webhook URL and classifies the answer; `sender`
delivers a run's rendered rows with bounded concurrency, retries and the destination's shared
pace; `csvimport` reads a Clay table export (CSV) one row at a time.
"""
