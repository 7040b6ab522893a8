"""The public inbound endpoint: Clay HTTP API columns and Directus Flows POST rows here.

Checks run cheapest first and nothing is stored until all pass: unknown route 404, wrong or
missing secret 401, body over KILN_INBOUND_MAX_BYTES 413, malformed JSON 400. Then the
receipt and its rows are committed and only then does Kiln answer 202 with the receipt id;
processing happens in workers, so the endpoint answers the same whether they are busy or down.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from console.access import client_ip
from integrations import inbound
from integrations.models import InboundRoute, Sync


def _problem(status, message):
    return JsonResponse({"error": message}, status=status)


def _presented_secret(request) -> str:
    secret = request.headers.get(InboundRoute.SECRET_HEADER, "")
    if not secret:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
    return secret


@csrf_exempt
@login_not_required
@require_POST
def receive(request, route):
    found = InboundRoute.objects.filter(slug=route).select_related("sync").first()
    if found is None:
        return _problem(404, "No inbound route at this URL.")
    if not found.accepts(_presented_secret(request)):
        return _problem(
            401,
            f"Missing or wrong secret: send the route's secret in the {InboundRoute.SECRET_HEADER} header.",
        )
    limit = settings.KILN_INBOUND_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _problem(413, f"The body is {declared:,} bytes; this route takes at most {limit:,}.")
    raw = request.read(limit + 1)  # the stream, not request.body: no second size rule applies
    if len(raw) > limit:
        return _problem(413, f"The body is over {limit:,} bytes, the most this route takes.")
    relay = found.sync.kind == Sync.Kind.RELAY
    try:
        rows = inbound.parse_body(raw, relay=relay)
    except inbound.BadPayload as exc:
        return _problem(400, str(exc))
    receipt = inbound.accept(found, rows, size=len(raw), remote_ip=client_ip(request), relay=relay)
    inbound.wake(found.pk)
    return JsonResponse(
        {
            "receipt": receipt.pk,
            "rows": receipt.rows,
            "duplicates": receipt.duplicates,
            "status": "accepted",
        },
        status=202,
    )
