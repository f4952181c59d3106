from django.core.management.base import BaseCommand

from analytics.mrr import ledger_rebuild


class Command(BaseCommand):
    help = "Recompute the MRR movement ledger of every customer from the subscription and coupon history (safe to rerun)."

    def handle(self, *args, **options):
        changed = ledger_rebuild()
        self.stdout.write(f"MRR ledger rebuilt: {changed} row(s) written or removed.")
