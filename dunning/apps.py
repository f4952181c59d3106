from django.apps import AppConfig


class DunningConfig(AppConfig):
    name = "dunning"

    def ready(self):
        # payments never imports dunning (DESIGN.md §1): dunning reacts to the domain events it publishes.
        from common import hooks  # noqa: PLC0415 — runs in AppConfig.ready()
        from dunning import services  # noqa: PLC0415 — runs in AppConfig.ready()

        hooks.subscribe("payment.failed", services.case_on_payment_failed)
        hooks.subscribe("payment.succeeded", services.step_on_payment_succeeded)
        hooks.subscribe("invoice.paid", services.case_on_invoice_paid)
        hooks.subscribe("invoice.voided", services.case_on_invoice_voided)
        hooks.subscribe("credit_note.issued", services.case_on_credit_note)
        hooks.subscribe("payment_method.attached", services.cases_on_payment_method_attached)
