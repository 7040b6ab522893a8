"""The Directus schema the query tests check against, in the shape integrations.directus.schema builds.

It follows the harness seed (harness/directus/seed.py), plus a `venues` collection that
carries the field types the seed does not use.
"""


def f(name, type_, relation=None, **extra):
    return {"type": type_, "required": False, "nullable": True, "relation": relation, **extra}


def m2o(collection):
    return {"kind": "m2o", "collection": collection}


def collection(fields, pk="id"):
    return {"primary_key": pk, "system": False, "singleton": False, "fields": fields}


SCHEMA = {
    "collections": {
        "articles": collection(
            {
                "id": f("id", "integer"),
                "status": f("status", "string", choices=["published", "draft", "archived"]),
                "title": f("title", "string"),
                "slug": f("slug", "string"),
                "content": f("content", "text"),
                "views": f("views", "integer"),
                "price": f("price", "decimal"),
                "published_at": f("published_at", "dateTime"),
                "deleted_at": f("deleted_at", "timestamp"),
                "author": f("author", "integer", m2o("authors")),
                "categories": f(
                    "categories",
                    "alias",
                    {
                        "kind": "o2m",
                        "collection": "articles_categories",
                        "field": "articles_id",
                        "junction_field": "categories_id",
                    },
                ),
                "date_created": f("date_created", "timestamp"),
                "date_updated": f("date_updated", "timestamp"),
            }
        ),
        "authors": collection(
            {
                "id": f("id", "integer"),
                "first_name": f("first_name", "string"),
                "last_name": f("last_name", "string"),
                "email": f("email", "string"),
                "company": f("company", "string"),
                "articles": f(
                    "articles",
                    "alias",
                    {"kind": "o2m", "collection": "articles", "field": "author"},
                ),
            }
        ),
        "categories": collection(
            {
                "id": f("id", "integer"),
                "name": f("name", "string"),
                "articles": f(
                    "articles",
                    "alias",
                    {
                        "kind": "o2m",
                        "collection": "articles_categories",
                        "field": "categories_id",
                        "junction_field": "articles_id",
                    },
                ),
            }
        ),
        "articles_categories": collection(
            {
                "id": f("id", "integer"),
                "articles_id": f("articles_id", "integer", m2o("articles")),
                "categories_id": f("categories_id", "integer", m2o("categories")),
            }
        ),
        "companies": collection(
            {
                "id": f("id", "integer"),
                "name": f("name", "string"),
                "domain": f("domain", "string"),
                "employees": f("employees", "integer"),
                "leads": f(
                    "leads", "alias", {"kind": "o2m", "collection": "leads", "field": "company"}
                ),
            }
        ),
        "leads": collection(
            {
                "id": f("id", "integer"),
                "email": f("email", "string"),
                "first_name": f("first_name", "string"),
                "last_name": f("last_name", "string"),
                "company": f("company", "integer", m2o("companies")),
                "enriched": f("enriched", "boolean"),
                "enrichment": f("enrichment", "json"),
                "score": f("score", "integer"),
                "date_created": f("date_created", "timestamp"),
                "date_updated": f("date_updated", "timestamp"),
            }
        ),
        "venues": collection(
            {
                "id": f("id", "uuid"),
                "owner": f("owner", "uuid", m2o("directus_users")),
                "location": f("location", "geometry.Point"),
                "area": f("area", "geometry"),
                "opens": f("opens", "time"),
                "founded": f("founded", "date"),
                "tags": f("tags", "csv"),
                "secret": f("secret", "hash"),
                "rating": f("rating", "float"),
                "visitors": f("visitors", "bigInteger"),
            }
        ),
    }
}
