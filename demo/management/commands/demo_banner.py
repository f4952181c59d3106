from django.core.management.base import BaseCommand
from django.utils import timezone

from customers.models import ApiKey
from customers.services import api_key_create, api_key_revoke

from demo.data import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME


class Command(BaseCommand):
    help = "Print how to reach the running demo, with a fresh admin-scoped API key (older demo keys are revoked)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args, url, **options):
        for old in ApiKey.objects.filter(name="demo", revoked_at__isnull=True):
            api_key_revoke(api_key=old, actor="demo_banner")
        _, raw = api_key_create(name="demo", scopes=["admin"])
        lines = [
            "",
            "Ledgerline demo is running (web app, Celery worker and beat; logs in .run/, stop with `make stop`).",
            f"  Back office:  {url}/   login {DEMO_ADMIN_USERNAME} / {DEMO_ADMIN_PASSWORD} (read-only: viewer / same password)",
            f"  Admin:        {url}/admin/   configuration (plans, metrics, taxes, coupons)",
            f"  API docs:     {url}/api/v1/docs/",
            f"  Try:          curl -H 'Authorization: Bearer {raw}' {url}/api/v1/customers/",
            f"  Started at {timezone.now():%Y-%m-%d %H:%M} UTC. Demo API key (admin scope):",
            raw,
        ]
        self.stdout.write("\n".join(lines))
