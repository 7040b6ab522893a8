"""Login with throttling of repeated failures, and logout."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.utils.decorators import method_decorator

from console.access import client_ip
from integrations.models import AuditEvent


def _keys(request, username):
    return [f"login-fail:ip:{client_ip(request)}", f"login-fail:user:{(username or '').lower()}"]


def is_locked_out(request, username) -> bool:
    limit = settings.KILN_LOGIN_MAX_FAILURES
    return any((cache.get(key) or 0) >= limit for key in _keys(request, username))


def record_failure(request, username) -> None:
    for key in _keys(request, username):
        cache.add(key, 0, settings.KILN_LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, settings.KILN_LOGIN_LOCKOUT_SECONDS)


def clear_failures(request, username) -> None:
    cache.delete_many(_keys(request, username))


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "auth/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if is_locked_out(request, username):
            form = self.get_form()
            form.errors.clear()
            form.add_error(
                None,
                "Too many failed sign-ins. Wait "
                f"{settings.KILN_LOGIN_LOCKOUT_SECONDS // 60} minutes and try again.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        username = self.request.POST.get("username", "")
        record_failure(self.request, username)
        AuditEvent.objects.create(
            action=AuditEvent.Action.LOGIN_FAILED,
            actor_name=username[:150],
            ip=client_ip(self.request) or None,
            target_type="user",
            target_name=username[:200],
        )
        return super().form_invalid(form)

    def form_valid(self, form):
        clear_failures(self.request, form.get_user().username)
        return super().form_valid(form)


logout = auth_views.LogoutView.as_view()
login = LoginView.as_view()
