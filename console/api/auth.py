"""Who is calling the API and what they may do: bearer tokens, console sessions, roles, throttles.

Token requests need no CSRF token (nothing a browser sends on its own authenticates them);
session requests go through DRF's SessionAuthentication, which enforces CSRF as the console's
forms do. Roles come from console.access: an endpoint asks for the role of the console view
that does the same thing (`needs(views.syncs.start_run)`), so one place decides.
"""

from rest_framework import authentication, exceptions, permissions, throttling

from console import access
from console.models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer kiln_…`: a personal token, acting as its owner with their role."""

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the token as `Authorization: Bearer <token>`.", code="token_malformed"
            )
        try:
            value = parts[1].decode("ascii")
        except UnicodeDecodeError:
            value = ""
        token = ApiToken.find(value)
        if token is None:
            raise exceptions.AuthenticationFailed(
                "This API token is not valid.", code="token_invalid"
            )
        if token.is_revoked:
            raise exceptions.AuthenticationFailed(
                f'The API token "{token.name}" was revoked.', code="token_revoked"
            )
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                f'The API token "{token.name}" expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.',
                code="token_expired",
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(
                "The owner of this API token is deactivated.", code="user_inactive"
            )
        token.touch(access.client_ip(request))
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="kiln"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The console's signed-in session, with the console's CSRF check on unsafe methods."""


def token_of(request) -> ApiToken | None:
    """The token a request authenticated with (None for a console session)."""
    return request.auth if isinstance(request.auth, ApiToken) else None


class _Role(permissions.BasePermission):
    role = "viewer"

    def has_permission(self, request, view):
        return access.allowed(request.user, self.role)


def needs_role(role: str):
    """A DRF permission allowing users whose role is at least `role` (console.access decides)."""
    return type(
        f"Needs{role.title()}",
        (_Role,),
        {"role": role, "message": f"This needs the {role} role."},
    )


def needs(console_view):
    """The permission of the console view that does the same thing: one place decides."""
    return needs_role(access.required_role(console_view))


SignedIn = needs_role("viewer")


class PerTokenThrottle(throttling.SimpleRateThrottle):
    """KILN_API_RATE requests per token (per user for a console session, per address otherwise)."""

    scope = "api"

    def get_cache_key(self, request, view):
        token = token_of(request)
        if token is not None:
            ident = f"token-{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{access.client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
