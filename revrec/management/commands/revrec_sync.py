from django.core.management.base import BaseCommand

from revrec.postings import revrec_sync


class Command(BaseCommand):
    help = "Post every source document (invoices, credit notes, voids, write-offs, payments) not yet in the journal."

    def handle(self, *args, **options):
        self.stdout.write(f"posted: {revrec_sync().as_dict()}")
