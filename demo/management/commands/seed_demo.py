from django.core.management.base import BaseCommand

from demo.data import seed_demo


class Command(BaseCommand):
    help = "Load the demo data set (idempotent) and run its billing cycle."

    def handle(self, *args, **options):
        summary = seed_demo()
        self.stdout.write("Demo data ready: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
