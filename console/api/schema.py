"""How the OpenAPI document describes each endpoint beyond its own serializers: the role it
needs (`x-required-role`, read from the same permission the endpoint checks) and the JSON
errors every endpoint can answer with."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from console.api import shapes

ERRORS = {
    "400": "Invalid parameters or body: `fields` names each one.",
    "401": "No token or session, or a token that is unknown, revoked or expired.",
    "403": "The caller's role is too low (or a session request without its CSRF token).",
    "404": "No such object.",
    "415": "The body is not JSON.",
    "429": "Too many requests for this token; wait `Retry-After` seconds.",
}


class KilnAutoSchema(AutoSchema):
    def required_role(self) -> str | None:
        for permission in getattr(self.view, "permission_classes", ()):
            role = getattr(permission, "role", None)
            if role:
                return role
        return None

    def get_description(self):
        role = self.required_role()
        text = super().get_description() or ""
        return (text + f"\n\nNeeds the **{role}** role.").strip() if role else text

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is not None and self.required_role():
            operation["x-required-role"] = self.required_role()
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not self.required_role():
            return responses  # the OpenAPI document itself
        codes = ["401", "403", "429"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["400", "415"]
        elif self.get_override_parameters():
            codes.append("400")
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(shapes.Error, description=ERRORS[code]),
                    code,
                    media_types=["application/json"],
                    direction=direction,
                )
        return responses

    def get_operation_id(self):
        """The endpoint function's name (`start_run`, `run_results`): stable for client generators."""
        if self.required_role():
            return type(self.view).__name__
        return super().get_operation_id()


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "console.api.auth.BearerTokenAuthentication"
    name = "token"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (Account → API tokens), `kiln_…`.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "console.api.auth.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The console's session; unsafe methods also need the CSRF token.",
        }
