from datetime import datetime, time, timezone

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from webhooks.delivery import webhooks_deliver_due


def _timestamp(value: str):
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--as-of: not an RFC 3339 timestamp or a date: {value!r}")
        moment = datetime.combine(day, time.min)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Command(BaseCommand):
    help = "One outbox sweep: every webhook delivery due by --as-of (default now) gets one attempt."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=_timestamp, default=None, help="RFC 3339 timestamp (default: now)")

    def handle(self, *args, as_of=None, **options):
        result = webhooks_deliver_due(as_of=as_of)
        self.stdout.write(f"attempted={result.attempted} succeeded={result.succeeded} failed={result.failed} "
                          f"endpoints_disabled={len(result.endpoints_disabled)}")
