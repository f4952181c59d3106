from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self):
        from common import hooks  # noqa: PLC0415 — runs in AppConfig.ready()
        from payments import subscribers  # noqa: PLC0415 — runs in AppConfig.ready()

        hooks.subscribe("invoice.finalized", subscribers.charge_on_finalize, many=True)
        hooks.subscribe("invoice.payment_recorded", subscribers.record_manual_payment)
        hooks.subscribe("credit_note.refund_requested", subscribers.refund_on_credit_note)
