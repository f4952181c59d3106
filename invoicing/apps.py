from django.apps import AppConfig


class InvoicingConfig(AppConfig):
    name = "invoicing"

    def ready(self) -> None:
        # Register the tasks in every process (web, scripts, workers): lower apps enqueue them by name.
        from invoicing import tasks  # noqa: F401, PLC0415 — runs in AppConfig.ready()
