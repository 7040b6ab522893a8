"""Directus: talking to a customer's Directus and knowing its shapes.

`client` is every call Kiln makes to Directus (items, schema, server limits, rate-limit
waits), failing as one DirectusError; `schema` builds Kiln's schema dict from Directus's raw
answers; `operators` and `fieldpaths` say which filter operators a field type takes and how a
dotted path walks relations; `flows` builds and checks Flow payloads and templates, and
`flow_installer` installs them.
"""
