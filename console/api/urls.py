"""/api/v1/: the JSON API's routes, its OpenAPI document, all outside LoginRequiredMiddleware
(the API answers 401 with JSON itself instead of redirecting to the sign-in page)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularYAMLAPIView

from console.api import actions, views


def _p(route, view, name):
    return path(route, login_not_required(view), name=name)


api_patterns = [
    _p("me/", views.me, "me"),
    _p("connections/", views.connections, "connections"),
    _p("connections/<int:pk>/", views.connection, "connection"),
    _p("connections/<int:pk>/test/", actions.test_connection, "connection-test"),
    _p("destinations/", views.destinations, "destinations"),
    _p("destinations/<int:pk>/", views.destination, "destination"),
    _p("queries/", views.queries, "queries"),
    _p("queries/<int:pk>/", views.query, "query"),
    _p("queries/<int:pk>/count/", actions.count_query, "query-count"),
    _p("templates/", views.templates, "templates"),
    _p("templates/<int:pk>/", views.template, "template"),
    _p("syncs/", views.syncs, "syncs"),
    _p("syncs/<int:pk>/", views.sync, "sync"),
    _p("syncs/<int:pk>/runs/", actions.start_run, "sync-start"),
    _p("runs/", views.runs, "runs"),
    _p("runs/<int:pk>/", views.run, "run"),
    _p("runs/<int:pk>/cancel/", actions.cancel_run, "run-cancel"),
    _p("runs/<int:pk>/retry/", actions.retry_failed_rows, "run-retry"),
    _p("runs/<int:pk>/resume/", actions.resume_read, "run-resume"),
    _p("runs/<int:pk>/results/", views.run_results, "run-results"),
    _p("runs/<int:pk>/results/<int:row_pk>/", views.run_result, "run-result"),
    _p("rows/<str:kiln_row_id>/", views.row_timeline, "row-timeline"),
    _p("openapi.json", SpectacularJSONAPIView.as_view(), "schema"),
    _p("openapi.yaml", SpectacularYAMLAPIView.as_view(), "schema-yaml"),
    re_path(r"^.*$", login_not_required(views.no_such_endpoint), name="no-such-endpoint"),
]
