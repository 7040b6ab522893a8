"""Create the first admin user with a random password, printed once; do nothing if one exists."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create user `admin` (role admin) with a random password unless an admin already exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(role=User.Role.ADMIN, is_active=True).exists():
            self.stdout.write("Admin already exists")
            return
        if User.objects.filter(username=username).exists():
            raise CommandError(
                f"User {username!r} exists but is not an active admin; "
                "give it the admin role or pass --username for a new one."
            )
        password = secrets.token_urlsafe(12)
        User.objects.create_user(username, password=password, role=User.Role.ADMIN)
        self.stdout.write(
            self.style.SUCCESS(f"Created admin user {username!r} with password: {password}")
        )
        self.stdout.write("This password is shown only once; change it after signing in.")
