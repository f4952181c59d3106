from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.anomalies import anomalies_detect


class Command(BaseCommand):
    help = ("Score every subscription's daily usage through --as-of (that day and every day since the last scan, "
            "at most 35 days back) and store new anomalies. Safe to rerun.")

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD (default: yesterday, UTC)")

    def handle(self, *args, **options):
        raw = options.get("as_of")
        try:
            as_of = date.fromisoformat(raw) if raw else timezone.now().date() - timedelta(days=1)
        except ValueError:
            raise CommandError(f"--as-of must be a date YYYY-MM-DD, not {raw!r}") from None
        result = anomalies_detect(as_of=as_of, actor="command:detect_anomalies")
        first = result.days[0].isoformat() if result.days else "-"
        self.stdout.write(f"Scored {len(result.days)} day(s) {first}..{as_of}: {len(result.created)} new anomaly(ies), "
                          f"{result.suppressed} matching a dismissed pattern.")
