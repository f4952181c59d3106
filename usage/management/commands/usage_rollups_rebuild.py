from django.core.management.base import BaseCommand

from usage.rollups import usage_rollups_rebuild


class Command(BaseCommand):
    help = "Recompute the daily usage rollups from the raw events (blocks ingestion while it runs)."

    def add_arguments(self, parser):
        parser.add_argument("--subscription-id", type=int, action="append", dest="subscription_ids",
                            help="only this subscription (repeatable)")

    def handle(self, *args, subscription_ids=None, **options):
        result = usage_rollups_rebuild(subscription_ids=subscription_ids)
        self.stdout.write(f"rebuilt: {result['daily_rows']} daily rows, {result['unique_rows']} unique-value rows "
                          f"in {result['seconds']} s")
