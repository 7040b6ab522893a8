"""Mapping: turning one row into another with templates and column maps (pure Python).

`templatesyntax` parses JSON with {{placeholders}}; `templates` compiles and fills a template
per row; `casts` are the conversions after `|`; `templatecheck` is the save-time check of a
template against known columns and fields; `fieldmapper` shows a body as rows (target ←
source); `columnmap` maps Clay columns to Directus fields for CSV lines and inbound rows.
"""
