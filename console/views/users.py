"""Admins manage users and their roles in the console, and lift sign-in lockouts."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console import lockout
from console.access import admin_required, client_ip
from console.forms import UserForm
from console.models import User
from integrations.models import AuditEvent


@admin_required
def users(request):
    people = list(User.objects.order_by("username"))
    locked = lockout.locked_addresses_by_user([u.username for u in people])
    for user in people:
        user.locked_from = locked.get(user.username, [])
    return render(
        request,
        "console/users.html",
        {"users": people, "locked_addresses": lockout.locked_out_addresses()},
    )


@admin_required
@require_POST
def unlock_user(request, pk):
    """Lift the user's sign-in lockouts on every address."""
    user = get_object_or_404(User, pk=pk)
    addresses = lockout.unlock_user(user.username)
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.CHANGED,
        user,
        {"unlocked": addresses},
        target_type="user",
    )
    messages.success(request, f"{user.username} may sign in again from every address.")
    return redirect("console:users")


@admin_required
@require_POST
def unlock_address(request):
    """Lift the lockout of an address that failed too often, whatever the usernames."""
    address = request.POST.get("address", "")[:100]
    if address not in lockout.locked_out_addresses():
        messages.error(request, f"{address or 'That address'} is not locked out.")
        return redirect("console:users")
    lockout.unlock_address(address)
    AuditEvent.record(
        request.user,
        client_ip(request),
        AuditEvent.Action.CHANGED,
        address,
        {"unlocked": [address]},
        target_type="address",
    )
    messages.success(request, f"Sign-ins from {address} are allowed again.")
    return redirect("console:users")


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
