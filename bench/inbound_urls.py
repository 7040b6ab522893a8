"""The console's URLs plus a bare view, for bench/inbound.py: the same server, nothing stored."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from console.views import inbound as inbound_views


@csrf_exempt
@login_not_required
def bare(request):
    """Reads the body and answers 202 as the inbound view does, storing nothing."""
    request.body  # noqa: B018 (read it, as the real view does)
    return HttpResponse(b'{"accepted": 1}', status=202, content_type="application/json")


# Twice: as every console page is served (Django's ASGI handler), and under /in/, served exactly
# as the endpoint is (console/asgi.py's InboundHandler), so the second pair of figures differs
# only by what the endpoint does.
# The endpoint's own view outside /in/ too: served by Django's ASGI handler, as it was before
# InboundHandler, for a before/after in the same run.
urlpatterns = [
    path("bench/in/<slug:route>/", inbound_views.receive),
    path("bench/bare/", bare),
    path("in/bench-bare/", bare),
    path("", include("console.urls")),
]
