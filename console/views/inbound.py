"""The public inbound endpoint: Clay HTTP API columns and Directus Flows POST rows here.

Checks run cheapest first and nothing is stored until all pass: unknown route 404, wrong or
missing secret 401, body over KILN_INBOUND_MAX_BYTES 413 (chunked ones too), malformed or
unstorable JSON 400 (see inbound.parse_body). Then the receipt and its rows are committed and
only then does Kiln answer 202 with the receipt id; processing happens in workers, so the
endpoint answers the same whether they are busy or down.
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from console.access import client_ip
from integrations.models import InboundRoute, Sync
from integrations.runs import inbound

logger = logging.getLogger(__name__)


def _problem(status, message):
    return JsonResponse({"error": message}, status=status)


def _presented_secret(request) -> str:
    secret = request.headers.get(InboundRoute.SECRET_HEADER, "")
    if not secret:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
    return secret


def _read_body(request, size: int) -> bytes:
    """Up to size bytes of the body, a chunked one (no Content-Length) included.

    The stream, not request.body: no second size rule applies. Django's WSGI request reads
    nothing without a Content-Length; the server has decoded the chunks, so they are read from
    its input stream instead.
    """
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    environ = getattr(request, "environ", {})
    if chunked and not request.META.get("CONTENT_LENGTH") and "wsgi.input" in environ:
        return environ["wsgi.input"].read(size)
    return request.read(size)


@csrf_exempt
@login_not_required
@require_POST
def receive(request, route):
    found = InboundRoute.receiving(route)
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
    try:
        raw = _read_body(request, limit + 1)
    except Exception as exc:  # the server's stream: a client gone, a broken chunk
        logger.info("Inbound route %s: body unreadable (%s)", found.pk, exc)
        return _problem(400, "The body could not be read to its end.")
    if len(raw) > limit:
        return _problem(413, f"The body is over {limit:,} bytes, the most this route takes.")
    relay = found.sync_kind == Sync.Kind.RELAY
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
