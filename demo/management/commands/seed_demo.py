"""Create (or bring back to their demo settings) the objects that point at the demo servers.

`bin/dev` runs this after starting `python -m demo` (unless KILN_DEMO=0): a
Directus connection, a Clay destination, a saved query, a clay_row template and a sync, so
a fresh checkout can be clicked through. Running it again updates the same rows by name
(URLs, tokens, settings) and creates nothing twice; run history and counters are kept.
"""

import os

from django.core.management.base import BaseCommand
from django.db import transaction

from demo import servers as demo
from integrations.models import (
    ClayDestination,
    DirectusConnection,
    MappingTemplate,
    SavedQuery,
    Secret,
    Sync,
)
from integrations.query import filters

CONNECTION = "Demo Directus"
DESTINATION = "Demo Clay table"
QUERY = "Published articles"
TEMPLATE = "Demo article row"
SYNC = "Published articles → Clay"

QUERY_STRING = (
    "filter[status][_eq]=published"
    "&fields=id,title,slug,views,published_at,author.first_name,author.last_name,author.email"
)
TEMPLATE_BODY = """{
  "id": {{id}},
  "title": "{{title}}",
  "url": "https://blog.example.com/{{slug}}",
  "views": {{views}},
  "published_at": "{{published_at}}",
  "author_name": "{{author.first_name}} {{author.last_name}}",
  "author_email": "{{author.email | lower}}",
  "source": "kiln-demo"
}"""


def default_url(variable, port):
    return f"http://{demo.HOST}:{os.environ.get(variable) or port}"


def seal_into(holder, attribute, value):
    """Point `holder.attribute` at a Secret holding `value`, re-using the one it has."""
    secret = getattr(holder, attribute, None) if getattr(holder, f"{attribute}_id") else None
    if secret is None:
        setattr(holder, attribute, Secret.seal(value))
    elif secret.reveal() != value:
        secret.set_value(value)
        secret.save()


class Command(BaseCommand):
    help = "Create or update the demo connection, destination, query, template and sync."

    def add_arguments(self, parser):
        parser.add_argument(
            "--directus-url",
            default=default_url("KILN_DEMO_DIRECTUS_PORT", demo.DEFAULT_DIRECTUS_PORT),
            help="the demo Directus (default http://127.0.0.1:$KILN_DEMO_DIRECTUS_PORT or 8056)",
        )
        parser.add_argument(
            "--sink-url",
            default=default_url("KILN_DEMO_SINK_PORT", demo.DEFAULT_SINK_PORT),
            help="the demo Clay sink (default http://127.0.0.1:$KILN_DEMO_SINK_PORT or 8057)",
        )

    def handle(self, *args, directus_url, sink_url, **options):
        with transaction.atomic():
            sync = seed(directus_url.rstrip("/"), sink_url.rstrip("/"))
        self.stdout.write(
            f'Demo ready: connection "{CONNECTION}" ({directus_url}), destination '
            f'"{DESTINATION}" ({sink_url}/), sync "{sync.name}".'
        )


def seed(directus_url, sink_url) -> Sync:
    connection = DirectusConnection.objects.filter(name=CONNECTION).first()
    if connection is None:
        connection = DirectusConnection(name=CONNECTION)
    connection.base_url = directus_url
    connection.environment = "dev"
    connection.probe_collection = "articles"
    seal_into(connection, "token", demo.DEMO_TOKEN)
    connection.save()

    destination = ClayDestination.objects.filter(name=DESTINATION).first()
    if destination is None:
        destination = ClayDestination(name=DESTINATION)
    seal_into(destination, "webhook_url", sink_url + demo.DEMO_SINK_PATH)
    seal_into(destination, "auth_token", demo.DEMO_SINK_TOKEN)
    destination.save()

    query_string = filters.Query.from_query_string(QUERY_STRING).to_query_string()
    saved, _ = SavedQuery.objects.update_or_create(
        connection=connection,
        name=QUERY,
        defaults={"collection": "articles", "query_string": query_string},
    )
    template, _ = MappingTemplate.objects.update_or_create(
        name=TEMPLATE,
        defaults={
            "kind": MappingTemplate.Kind.CLAY_ROW,
            "connection": connection,
            "collection": "articles",
            "saved_query": saved,
            "body": TEMPLATE_BODY,
            "options": {"missing": "null"},
        },
    )
    sync, _ = Sync.objects.update_or_create(
        name=SYNC,
        defaults={
            "kind": Sync.Kind.DIRECTUS_TO_CLAY,
            "saved_query": saved,
            "destination": destination,
            "template": template,
            "row_key": "id",
            "rate_limit": 20,
            "concurrency": 4,
            "page_size": 50,
            "mode": Sync.Mode.FULL,
        },
    )
    return sync
