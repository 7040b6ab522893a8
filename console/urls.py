from django.urls import include, path

from console.views import (
    auth,
    credentials,
    home,
    mapping_exports,
    mappings,
    notifications,
    queries,
    runs,
    syncs,
    users,
)

console_patterns = [
    path("", home.home, name="home"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    # Credential store
    path("connections/", credentials.connections, name="connections"),
    path("connections/new/", credentials.add_connection, name="connection-add"),
    path("connections/<int:pk>/", credentials.connection_detail, name="connection-detail"),
    path("connections/<int:pk>/edit/", credentials.edit_connection, name="connection-edit"),
    path("connections/<int:pk>/test/", credentials.test_connection, name="connection-test"),
    path("connections/<int:pk>/delete/", credentials.delete_connection, name="connection-delete"),
    path("destinations/", credentials.destinations, name="destinations"),
    path("destinations/new/", credentials.add_destination, name="destination-add"),
    path("destinations/<int:pk>/", credentials.destination_detail, name="destination-detail"),
    path("destinations/<int:pk>/edit/", credentials.edit_destination, name="destination-edit"),
    path("destinations/<int:pk>/test/", credentials.test_destination, name="destination-test"),
    path("notifications/", notifications.channels, name="notifications"),
    path(
        "notifications/<int:pk>/test/",
        notifications.test_channel,
        name="notification-test",
    ),
    path(
        "notifications/<int:pk>/delete/",
        notifications.delete_channel,
        name="notification-delete",
    ),
    path(
        "destinations/<int:pk>/webhooks/add/",
        credentials.add_pool_webhook,
        name="destination-webhook-add",
    ),
    path(
        "destinations/<int:pk>/webhooks/<int:webhook_pk>/remove/",
        credentials.remove_pool_webhook,
        name="destination-webhook-remove",
    ),
    path(
        "destinations/<int:pk>/delete/", credentials.delete_destination, name="destination-delete"
    ),
    path("network/", credentials.allowed_networks, name="allowed-networks"),
    path(
        "network/<int:pk>/delete/",
        credentials.delete_allowed_network,
        name="allowed-network-delete",
    ),
    path("audit/", credentials.audit_log, name="audit"),
    # Syncs and run history
    path("syncs/", syncs.syncs, name="syncs"),
    path("syncs/new/", syncs.add_sync, name="sync-add"),
    path("syncs/schedule-preview/", syncs.schedule_preview, name="sync-schedule-preview"),
    path("syncs/<int:pk>/", syncs.sync_detail, name="sync-detail"),
    path("syncs/<int:pk>/edit/", syncs.edit_sync, name="sync-edit"),
    path("syncs/<int:pk>/start/", syncs.start_run, name="sync-start"),
    path("syncs/<int:pk>/pause/", syncs.pause_sync, name="sync-pause"),
    path("runs/", runs.runs, name="runs"),
    path("runs/<int:pk>/", runs.run_detail, name="run-detail"),
    path("runs/<int:pk>/progress/", runs.run_progress, name="run-progress"),
    path("runs/<int:pk>/cancel/", runs.cancel_run, name="run-cancel"),
    path("runs/<int:pk>/retry/", runs.retry_failed_rows, name="run-retry"),
    path("runs/<int:pk>/resume/", runs.resume_read, name="run-resume"),
    path("runs/<int:pk>/rows/<int:row_pk>/", runs.row_detail, name="run-row"),
    path("runs/<int:pk>/results.csv", runs.export_results, name="run-export"),
    # Query builder and saved queries
    path("queries/", queries.query_builder, name="query-builder"),
    path("queries/schema/", queries.refresh_schema, name="query-schema-refresh"),
    path("queries/count/", queries.count_matches, name="query-count"),
    path("queries/send/", queries.send_query, name="query-send"),
    path("queries/save/", queries.save_query, name="query-save"),
    path("queries/saved/", queries.saved_queries, name="saved-queries"),
    path("queries/saved/<int:pk>/delete/", queries.delete_saved_query, name="saved-query-delete"),
    # Mapping templates
    path("templates/", mappings.templates, name="templates"),
    path("templates/new/", mappings.add_template, name="template-add"),
    path("templates/mapper/", mappings.sync_mapper, name="template-mapper"),
    path("templates/preview/", mappings.preview_template, name="template-preview"),
    path("templates/test/", mappings.test_template, name="template-test"),
    path("templates/<int:pk>/", mappings.template_detail, name="template-detail"),
    path("templates/<int:pk>/delete/", mappings.delete_template, name="template-delete"),
    path("templates/<int:pk>/exports/", mapping_exports.template_exports, name="template-exports"),
    path("templates/<int:pk>/install/", mapping_exports.install_flow, name="template-install"),
    # Users and roles
    path("users/", users.users, name="users"),
    path("users/new/", users.add_user, name="user-add"),
    path("users/<int:pk>/", users.edit_user, name="user-edit"),
    path("users/<int:pk>/unlock/", users.unlock_user, name="user-unlock"),
    path("users/unlock-address/", users.unlock_address, name="address-unlock"),
]

# Write-back, inbound routes and the relay (Clay → Directus, Directus Flow → Clay)
from console.views import inbound as inbound_views  # noqa: E402
from console.views import writeback  # noqa: E402

console_patterns += [
    path("in/<slug:route>/", inbound_views.receive, name="inbound"),
    path("writeback/", writeback.writeback_home, name="writeback"),
    path("writeback/syncs/new/", writeback.add_writeback_sync, name="writeback-sync-add"),
    path("writeback/upload/", writeback.upload_csv, name="writeback-upload"),
    path("writeback/uploads/<int:pk>/", writeback.csv_upload, name="writeback-upload-detail"),
    path(
        "writeback/uploads/<int:pk>/confirm/",
        writeback.confirm_upload,
        name="writeback-upload-confirm",
    ),
    path("writeback/syncs/<int:pk>/route/", writeback.open_route, name="writeback-route-open"),
    path("writeback/routes/<int:pk>/", writeback.route_detail, name="writeback-route"),
    path(
        "writeback/routes/<int:pk>/rotate/", writeback.rotate_secret, name="writeback-route-rotate"
    ),
    path(
        "writeback/routes/<int:pk>/revoke/",
        writeback.revoke_previous_secret,
        name="writeback-route-revoke",
    ),
    path("writeback/routes/<int:pk>/replay/", writeback.replay_rows, name="writeback-route-replay"),
    path(
        "writeback/routes/<int:pk>/install/",
        writeback.install_relay,
        name="writeback-relay-install",
    ),
    path("writeback/stuck/", writeback.stuck_rows, name="writeback-stuck"),
    path("rows/<str:kiln_row_id>/", writeback.row_timeline, name="row-timeline"),
]

# The JSON API (console/api/), its personal tokens and its docs page (console/views/account.py)
from console.api.urls import api_patterns  # noqa: E402
from console.views import account  # noqa: E402

console_patterns += [
    path("account/tokens/", account.tokens, name="api-tokens"),
    path("account/tokens/<int:pk>/revoke/", account.revoke_token, name="api-token-revoke"),
    path("api/docs/", account.api_docs, name="api-docs"),
]

urlpatterns = [
    path("", include((console_patterns, "console"), namespace="console")),
    path("api/v1/", include((api_patterns, "api"), namespace="api")),
]
