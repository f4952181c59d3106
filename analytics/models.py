"""Finance analytics: the MRR movement ledger (DESIGN.md §11).

One row per customer, currency and month in which the customer's committed MRR at the month's end
differs from the previous month's end. The row says which movement it was (new, expansion,
contraction, churn, reactivation), by how much, and the MRR before and after, so the monthly bridge
`mrr_end = mrr_start + new + reactivation + expansion − contraction − churn` holds exactly.

The ledger is derived: `analytics.mrr` writes it from the subscription change ledger and the
coupon redemptions, live (through `common.hooks`) and again on `analytics_rebuild`. It carries no
history table: it is never edited by hand, and any row can be recomputed from its sources.
"""

from __future__ import annotations

from django.db import models

MONEY_FIELD = dict(max_digits=20, decimal_places=4)


class MovementKind(models.TextChoices):
    NEW = "new", "new"
    EXPANSION = "expansion", "expansion"
    CONTRACTION = "contraction", "contraction"
    CHURN = "churn", "churn"
    REACTIVATION = "reactivation", "reactivation"


# Sign of each movement in the bridge identity.
MOVEMENT_SIGN = {
    MovementKind.NEW: 1, MovementKind.REACTIVATION: 1, MovementKind.EXPANSION: 1,
    MovementKind.CONTRACTION: -1, MovementKind.CHURN: -1,
}


class MrrMovement(models.Model):
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="mrr_movements")
    currency = models.CharField(max_length=3)
    month = models.DateField(help_text="First day of the month whose end-of-month MRR moved")
    kind = models.CharField(max_length=14, choices=MovementKind.choices)
    amount = models.DecimalField(help_text="Positive size of the movement", **MONEY_FIELD)
    mrr_before = models.DecimalField(help_text="MRR at the end of the previous month", **MONEY_FIELD)
    mrr_after = models.DecimalField(help_text="MRR at the end of this month", **MONEY_FIELD)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["month", "customer_id"]
        indexes = [models.Index(fields=["currency", "month"])]
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency", "month"], name="mrr_movement_one_per_customer_month"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="mrr_movement_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.kind} {self.amount} {self.currency} ({self.customer_id})"

    @property
    def signed_amount(self):
        return self.amount * MOVEMENT_SIGN[self.kind]
