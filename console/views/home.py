"""The home page: the ops dashboard (what is failing now, runs in progress, each sync's last
runs), then the connections and destinations."""

from django.shortcuts import render

from console.access import viewer_required
from integrations import dashboard
from integrations.models import ClayDestination, DirectusConnection, Sync


@viewer_required
def home(request):
    if request.htmx and request.htmx.target == "in-progress":
        runs = dashboard.runs_in_progress()
        return render(request, "console/home.html#in-progress", {"in_progress": runs})
    syncs = list(Sync.objects.order_by("name")[: dashboard.LIST_AT_MOST * 2])
    return render(
        request,
        "console/home.html",
        {
            "problems": dashboard.failing_now(),
            "in_progress": dashboard.runs_in_progress(),
            "strips": dashboard.run_strips(syncs),
            "connections": DirectusConnection.objects.select_related("token").defer("schema")[:20],
            "destinations": ClayDestination.objects.all()[:20],
        },
    )
