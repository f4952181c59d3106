from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outbound webhooks"

    def ready(self) -> None:
        from common import hooks
        from webhooks.outbox import outbox_write

        # Every business audit row is a domain event; the outbox keeps those that map to a webhook type.
        hooks.subscribe("*", outbox_write, many=True)
