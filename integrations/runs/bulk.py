"""Many rows in one INSERT, for the engine's hot path (row results, written per window).

`bulk_create` compiles every field of every model instance in Python, which on a 2-core
box cost the engine more CPU per row than sending the row. Here a window's rows go in as
plain tuples, the driver doing the adapting: one multi-row INSERT (PostgreSQL: one round
trip), or on SQLite one statement executed for each row in C.

Values must be plain str/int/bool/None (datetimes: pass them in `constants`, adapted once).
Fields the caller does not name get their model default, so adding a field with a default
to the model keeps this working. Example:

    insert(RowResult, ["run", "row_key", "status"], [(1, "7", "sent")],
           constants={"created_at": now}, ignore_conflicts=True)
"""

from django.db import connection

# SQLite allows 32,766 parameters per statement (3.32+), PostgreSQL 65,535.
MAX_PARAMS = 30_000


def insert(model, fields, rows, *, constants=None, ignore_conflicts=False) -> None:
    """INSERT `rows` (tuples in `fields` order); ON CONFLICT DO NOTHING if ignore_conflicts."""
    if not rows:
        return
    meta = model._meta
    constants = dict(constants or {})
    named = set(fields) | set(constants)
    for f in meta.concrete_fields:
        if f.primary_key or f.name in named or f.attname in named:
            continue
        constants[f.name] = f.get_default()
    extra = tuple(
        meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in constants.items()
    )
    columns = [meta.get_field(name).column for name in (*fields, *constants)]
    qn = connection.ops.quote_name
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Identifiers come from the model, quoted; every value is a parameter.
    head = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(c) for c in columns)}) VALUES "  # noqa: S608
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    per_statement = max(1, MAX_PARAMS // len(columns))
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # In-process: sqlite3 loops over one prepared statement in C, the cheapest there.
            cursor.executemany(head + row_sql + tail, [(*row, *extra) for row in rows])
            return
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [value for row in chunk for value in (*row, *extra)]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)) + tail, params)


def lookup(model, key_field, value_field, keys) -> dict:
    """{key: value} of the rows whose `key_field` is in `keys` (plain str/int keys).

    `filter(key__in=...)` preps every key in Python (~15 µs per row on the engine's hot
    path); here the keys go to the driver as they are, in chunks under the parameter limit.
    """
    keys = list(keys)
    if not keys:
        return {}
    meta = model._meta
    qn = connection.ops.quote_name
    key_col = qn(meta.get_field(key_field).column)
    value_col = qn(meta.get_field(value_field).column)
    found = {}
    with connection.cursor() as cursor:
        for start in range(0, len(keys), MAX_PARAMS):
            chunk = keys[start : start + MAX_PARAMS]
            # Identifiers come from the model, quoted; every key is a parameter.
            cursor.execute(
                f"SELECT {key_col}, {value_col} FROM {qn(meta.db_table)} "  # noqa: S608
                f"WHERE {key_col} IN ({', '.join(['%s'] * len(chunk))})",
                chunk,
            )
            found.update(cursor.fetchall())
    return found
