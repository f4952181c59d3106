from django.core.management.base import BaseCommand, CommandError

from common.errors import ApplicationError
from customers.services import api_key_create


class Command(BaseCommand):
    help = "Create a scoped API key. The key is printed once, alone on the last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scopes", default="admin", help="comma-separated: usage:write,billing:read,billing:write,admin")

    def handle(self, *args, name, scopes, **options):
        try:
            key, raw = api_key_create(name=name, scopes=[s.strip() for s in scopes.split(",") if s.strip()])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created API key '{key.name}' (prefix {key.prefix}, scopes {','.join(key.scopes)}). Store it now:")
        self.stdout.write(raw)
