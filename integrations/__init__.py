"""Kiln's domain: the data and the systems it talks to, with no request objects.

`models/` holds every table; `outbound/` is the one way out to a user-entered URL; `directus/`
and `clay/` talk to those systems; `query/` and `mapping/` are the pure models of a Directus
query and of a row mapping; `runs/` works many rows with one outcome each, on one run core;
`tasks.py` holds the thin Celery tasks. The README's Architecture section walks the tree.
"""
