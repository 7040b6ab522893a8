from django.shortcuts import render

from console.access import viewer_required
from integrations.models import ClayDestination, DirectusConnection


@viewer_required
def home(request):
    return render(
        request,
        "console/home.html",
        {
            "connections": DirectusConnection.objects.select_related("token")[:20],
            "destinations": ClayDestination.objects.all()[:20],
        },
    )
