"""The demo: a small Directus and a Clay-like webhook sink for the embedded quick start.

`servers` runs both (`python -m demo`, started by `bin/dev`); `manage.py seed_demo` creates
the connection, destination, query and sync that point at them. Nothing in `console/` or
`integrations/` imports this package, and the production image leaves it out: settings add
it to INSTALLED_APPS only where it is present.
"""
