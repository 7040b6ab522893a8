"""Admins manage users and their roles in the console."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render

from console.access import admin_required, client_ip
from console.forms import UserForm
from console.models import User
from integrations.models import AuditEvent


@admin_required
def users(request):
    return render(request, "console/users.html", {"users": User.objects.order_by("username")})


@admin_required
def add_user(request):
    form = UserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        AuditEvent.record(
            request.user,
            client_ip(request),
            AuditEvent.Action.CREATED,
            user,
            {"role": user.role},
            target_type="user",
        )
        messages.success(request, f"Added {user.username} as {user.get_role_display().lower()}.")
        return redirect("console:users")
    return render(request, "console/user_form.html", {"form": form})


@admin_required
def edit_user(request, pk):
    user = get_object_or_404(User, pk=pk)
    old_role = user.role
    form = UserForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        if user == request.user and (
            form.cleaned_data["role"] != User.Role.ADMIN or not form.cleaned_data["is_active"]
        ):
            form.add_error("role", "You cannot remove your own admin role or deactivate yourself.")
        else:
            user = form.save()
            if user.role != old_role:
                AuditEvent.record(
                    request.user,
                    client_ip(request),
                    AuditEvent.Action.ROLE_CHANGED,
                    user,
                    {"from": old_role, "to": user.role},
                    target_type="user",
                )
            messages.success(request, f"Saved {user.username}.")
            return redirect("console:users")
    return render(request, "console/user_form.html", {"form": form, "edited": user})
