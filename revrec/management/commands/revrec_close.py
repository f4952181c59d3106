from django.core.management.base import BaseCommand, CommandError

from common.errors import ApplicationError
from revrec.close import parse_month, revrec_close


class Command(BaseCommand):
    help = "Post a month's revenue recognition and close it (rerunnable: nothing posts twice)."

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="YYYY-MM")

    def handle(self, *args, month, **options):
        try:
            first = parse_month(month)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            summary = revrec_close(month=first, actor="command:revrec_close")
        except ApplicationError as exc:
            raise CommandError(str(exc)) from None
        state = "already closed" if summary["already_closed"] else "closed"
        self.stdout.write(f"{summary['month']} {state}: {summary['entries']} recognition entries; "
                          f"synced {summary['synced']}")
