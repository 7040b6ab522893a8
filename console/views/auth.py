"""Login with throttling of repeated failures, and logout."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.utils.decorators import method_decorator

from console import lockout
from console.access import client_ip
from integrations.models import AuditEvent


def _lockout_message(locked: str) -> str:
    minutes = max(1, settings.KILN_LOGIN_LOCKOUT_SECONDS // 60)
    if locked == lockout.ADDRESS:
        return f"Too many failed sign-ins from your address. Wait {minutes} minutes and try again."
    return (
        "Too many failed sign-ins for this account from your address. Wait "
        f"{minutes} minutes, or ask an admin to unlock the account."
    )


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "auth/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        locked = lockout.lockout(username, client_ip(request))
        if locked:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, _lockout_message(locked))
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        username = self.request.POST.get("username", "")
        lockout.record_failure(username, client_ip(self.request))
        AuditEvent.objects.create(
            action=AuditEvent.Action.LOGIN_FAILED,
            actor_name=username[:150],
            ip=client_ip(self.request) or None,
            target_type="user",
            target_name=username[:200],
        )
        return super().form_invalid(form)

    def form_valid(self, form):
        lockout.clear_failures(form.get_user().username, client_ip(self.request))
        return super().form_valid(form)


logout = auth_views.LogoutView.as_view()
login = LoginView.as_view()
