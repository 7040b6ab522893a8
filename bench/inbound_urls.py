"""The console's URLs plus a bare view, for bench/inbound.py: the same server, nothing stored."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
@login_not_required
def bare(request):
    """Reads the body and answers 202 as the inbound view does, storing nothing."""
    request.body  # noqa: B018 (read it, as the real view does)
    return HttpResponse(b'{"accepted": 1}', status=202, content_type="application/json")


urlpatterns = [path("bench/bare/", bare), path("", include("console.urls"))]
