"""Manual payments recorded before issue 13 lived in `invoicing.Payment`; copy them into
`payments.Payment` (succeeded, fully applied) so every payment has one home. Idempotent: a legacy
row is copied once (matched by invoice, amount, date and reference)."""

from django.db import migrations

METHODS = {"bank_transfer", "check", "other"}


def copy_legacy(apps, schema_editor):
    Legacy = apps.get_model("invoicing", "Payment")
    Payment = apps.get_model("payments", "Payment")
    for row in Legacy.objects.select_related("invoice").order_by("pk").iterator():
        exists = Payment.objects.filter(invoice_id=row.invoice_id, amount=row.amount, paid_on=row.paid_on,
                                        reference=row.reference).exclude(method="card").exists()
        if exists:
            continue
        method = row.method if row.method in METHODS else ("bank_transfer" if row.method == "manual" else "other")
        Payment.objects.create(invoice_id=row.invoice_id, customer_id=row.invoice.customer_id, amount=row.amount,
                               currency=row.currency, status="succeeded", method=method, paid_on=row.paid_on,
                               reference=row.reference, amount_applied=row.amount, recorded_by=row.recorded_by)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("invoicing", "0001_initial"),
    ]

    operations = [migrations.RunPython(copy_legacy, migrations.RunPython.noop)]
