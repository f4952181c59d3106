"""python manage.py create_finance_user NAME --role admin|viewer --password PASSWORD

Creates the user (or updates an existing one's password and role): staff, in exactly one of the
finance groups. Safe to rerun."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from common.groups import FINANCE_ADMIN, FINANCE_VIEWER, sync_finance_groups

ROLES = {"admin": FINANCE_ADMIN, "viewer": FINANCE_VIEWER}


class Command(BaseCommand):
    help = "Create or update a finance back-office user (role admin or viewer)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLES))
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, password, email, **options):
        username = username.strip()
        if not username:
            raise CommandError("The username may not be empty.")
        if not password:
            raise CommandError("The password may not be empty.")
        with transaction.atomic():
            if not Group.objects.filter(name__in=ROLES.values()).count() == len(ROLES):
                sync_finance_groups()
            user, created = get_user_model().objects.get_or_create(username=username)
            user.is_staff = True
            user.is_active = True
            if email:
                user.email = email
            user.set_password(password)
            user.save()
            finance = Group.objects.filter(name__in=ROLES.values())
            user.groups.remove(*finance)
            user.groups.add(Group.objects.get(name=ROLES[role]))
        self.stdout.write(f"{'Created' if created else 'Updated'} {role} user {username}.")
