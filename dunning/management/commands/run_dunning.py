from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dunning.services import dunning_sweep


class Command(BaseCommand):
    help = "Run every dunning step due by --as-of (retries, e-mails, escalations, final actions); safe to rerun."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help="RFC 3339 timestamp, e.g. 2026-04-10T12:00:00Z (default: now)")

    def handle(self, *args, as_of=None, **options):
        if as_of:
            try:
                instant = datetime.fromisoformat(as_of.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError as exc:
                raise CommandError(f"--as-of must be an RFC 3339 timestamp, got {as_of!r}") from exc
            if timezone.is_naive(instant):
                instant = instant.replace(tzinfo=timezone.get_fixed_timezone(0))
        else:
            instant = timezone.now()
        counts = dunning_sweep(as_of=instant)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing due"
        self.stdout.write(f"dunning as of {instant.isoformat()}: {summary}")
