"""Who may do what: role decorators and the client address for the audit log."""

from functools import wraps

from django.core.exceptions import PermissionDenied


def role_required(role):
    """Allow the view to users whose role is at least `role`; others get 403."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated or not request.user.has_role(role):
                raise PermissionDenied(f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


viewer_required = role_required("viewer")
operator_required = role_required("operator")
admin_required = role_required("admin")


def client_ip(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy sets it,
    # and the production proxy (gunicorn behind a load balancer) is configured to rewrite it.
    return request.META.get("REMOTE_ADDR", "")
