from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Audit and shared"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate  # noqa: PLC0415 — runs in AppConfig.ready()

        from common.groups import sync_finance_groups  # noqa: PLC0415 — runs in AppConfig.ready()

        post_migrate.connect(sync_finance_groups, dispatch_uid="ledgerline-sync-finance-groups")
