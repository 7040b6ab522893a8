"""Who may do what: role decorators, and the client address for lockouts and the audit log."""

import functools
import ipaddress
import logging
from functools import wraps

from django.conf import settings
from django.core.exceptions import PermissionDenied

logger = logging.getLogger(__name__)


def allowed(user, role) -> bool:
    """The one role check: console views (role_required) and the API's permissions ask it."""
    return bool(user is not None and user.is_authenticated and user.has_role(role))


def role_required(role):
    """Allow the view to users whose role is at least `role`; others get 403."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not allowed(request.user, role):
                raise PermissionDenied(f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        # The API endpoint that does what this view does reads the role from here.
        wrapper.required_role = role
        return wrapper

    return decorator


def required_role(view) -> str:
    """The role a console view asks for (see role_required); its API twin asks for the same."""
    role = getattr(view, "required_role", None)
    if role is None:
        raise ValueError(f"{view.__name__} is not guarded by role_required")
    return role


viewer_required = role_required("viewer")
operator_required = role_required("operator")
admin_required = role_required("admin")


@functools.cache
def _proxy_networks(entries: tuple[str, ...]) -> tuple:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.warning("Ignoring %r in KILN_TRUSTED_PROXIES: not an address or CIDR", entry)
    return tuple(networks)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For when REMOTE_ADDR is a trusted proxy.

    X-Forwarded-For is read right to left, skipping trusted proxies, so a client cannot choose
    its own address: with proxy 10.0.0.2 trusted, `X-Forwarded-For: 6.6.6.6, 203.0.113.9` from
    10.0.0.2 is 203.0.113.9 (the address the proxy saw), never the 6.6.6.6 the client typed.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    networks = _proxy_networks(tuple(getattr(settings, "KILN_TRUSTED_PROXIES", ()) or ()))

    def trusted(addr) -> bool:
        return any(addr.version == n.version and addr in n for n in networks)

    current = _address(peer)
    if current is None or not trusted(current):
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        addr = _address(hop)
        if addr is None:  # garbage in the header: trust nothing further left of it
            break
        current = addr
        if not trusted(addr):
            break
    return str(current)
