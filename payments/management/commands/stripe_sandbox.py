"""python manage.py stripe_sandbox --port PORT [--webhook-url URL --webhook-secret SECRET]

Runs the local Stripe sandbox (localstripe, extended: payments/sandbox/server.py) in the
foreground on 127.0.0.1. Point the app at it with STRIPE_API_BASE=http://127.0.0.1:PORT."""

from django.core.management.base import BaseCommand, CommandError

from payments.sandbox.server import serve


class Command(BaseCommand):
    help = "Run the local Stripe sandbox (localstripe + Ledgerline extensions) in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--webhook-url", default="")
        parser.add_argument("--webhook-secret", default="")
        parser.add_argument("--state-file", default="", help="keep the sandbox's objects across restarts (demo)")

    def handle(self, *args, port, host, webhook_url, webhook_secret, state_file, **options):
        if webhook_url and not webhook_secret:
            raise CommandError("--webhook-url needs --webhook-secret (the STRIPE_WEBHOOK_SECRET the app verifies with)")

        def ready():
            self.stdout.write(f"Stripe sandbox listening on http://{host}:{port}"
                              + (f", webhooks to {webhook_url}" if webhook_url else ""), ending="\n")
            self.stdout.flush()

        try:
            serve(host=host, port=port, webhook_url=webhook_url or None, webhook_secret=webhook_secret or None,
                  state_file=state_file or None, ready=ready)
        except KeyboardInterrupt:
            pass
