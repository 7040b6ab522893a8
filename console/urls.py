from django.urls import include, path

from console.views import auth, credentials, home, users

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
    # Users and roles
    path("users/", users.users, name="users"),
    path("users/new/", users.add_user, name="user-add"),
    path("users/<int:pk>/", users.edit_user, name="user-edit"),
]

urlpatterns = [
    path("", include((console_patterns, "console"), namespace="console")),
]
