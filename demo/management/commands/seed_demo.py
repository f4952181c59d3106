from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.data import seed_demo


class Command(BaseCommand):
    help = "Load the demo data set (idempotent) and run its billing cycle."

    def handle(self, *args, **options):
        if not getattr(settings, "DEMO_DATA_ALLOWED", True):
            raise CommandError("The demo data set (with its published logins) is not loaded under these settings.")
        summary = seed_demo()
        self.stdout.write("Demo data ready: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
