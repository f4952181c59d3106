from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from invoicing.billing_run import billing_run, billing_run_enqueue


class Command(BaseCommand):
    help = "Close every billing period that ends on or before --as-of and create its invoices (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD (default: today)")
        parser.add_argument("--no-finalize", action="store_true", help="leave the new invoices as drafts")
        parser.add_argument("--no-wait", action="store_true",
                            help="queue the run for the Celery workers (chunks fan out) and print its id")

    def handle(self, *args, as_of=None, no_finalize=False, no_wait=False, **options):
        try:
            day = date.fromisoformat(as_of) if as_of else timezone.localdate()
        except ValueError as exc:
            raise CommandError(f"--as-of must be YYYY-MM-DD, got {as_of!r}") from exc
        if no_wait:
            run = billing_run_enqueue(as_of=day, actor="manage.py run_billing", auto_finalize=not no_finalize,
                                      chunk_size=settings.BILLING_RUN_CHUNK_SIZE)
            self.stdout.write(f"billing run {run.pk} as of {run.as_of}: queued")
            return
        run = billing_run(as_of=day, actor="manage.py run_billing", auto_finalize=not no_finalize,
                          chunk_size=settings.BILLING_RUN_CHUNK_SIZE)
        self.stdout.write(
            f"billing run {run.pk} as of {run.as_of}: {run.status}; subscriptions examined {run.subscriptions_examined}, "
            f"due {run.subscriptions_due}; invoices created {run.invoices_created} "
            f"({run.lines_created} lines, {run.invoices_flagged} flagged for review, {run.invoices_finalized} finalized); "
            f"errors {run.error_count}"
        )
        for error in run.errors[:20]:
            self.stderr.write(f"  error: {error}")
