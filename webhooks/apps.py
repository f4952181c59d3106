from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outbound webhooks"

    def ready(self) -> None:
        from common import hooks  # noqa: PLC0415 — runs in AppConfig.ready()
        from webhooks.outbox import outbox_write  # noqa: PLC0415 — runs in AppConfig.ready()

        # Every business audit row is a domain event; the outbox keeps those that map to a webhook type.
        hooks.subscribe("*", outbox_write, many=True)
