"""The one owner of invoice money (DESIGN.md §3 order):

    lines → coupons → tax → credit balance → prepaid credits

Two layers, both here:
- the pure engine `compute_invoice_totals` (no database): lines in, `InvoiceAmounts` out; it uses
  the pricing rules `catalog.discounts.compute_discounts` and `catalog.taxes.compute_tax`, and the
  credit rule `apply_credits` below;
- `invoice_totals`, which feeds the engine the invoice's coupons, tax determination and credits and
  shapes its result into the invoice's fields and frozen breakdown (`discount_lines`, `tax_lines`,
  `tax_note`, `credit_balance_applied`, `prepaid_applied`); `totals_inputs` / `TotalsPreview` read
  those inputs (with locks at finalize, without during a billing run's drafts).

The engine's arithmetic:

    subtotal  = Σ line amounts (each already rounded once, per DESIGN.md §2; credit lines negative)
    discount  = Σ coupon discounts (catalog.discounts: application order, each on what remains,
                never below zero) on the subtotal less the lines that are not discountable
                (credits for unused time, already net of the discount they were charged with)
    taxable   = subtotal − discount
    tax       = per rate (catalog.taxes), each rate rounded half up, on `taxable` when every line
                is taxable; otherwise on `taxable_lines − share`, where the discount's taxable share
                is `discount × taxable_lines / subtotal` rounded half up (0 without a discount or
                with a subtotal ≤ 0)
    total     = taxable + tax
    credits   = credit balance, then prepaid credits, up to `total` (`apply_credits`)
    amount_due = total − credits ≥ 0

Negative totals (like Stripe): when credit lines (e.g. proration credits) outweigh the charges, the
subtotal, taxable and total are negative, no coupon, credit balance or prepaid credit is used,
`amount_due` is 0 and `balance_credit` (= −total) is what finalize credits to the customer's balance
(`customers.services.credit_balance_credit_from_invoice`).

Line amounts must already be at the currency's minor unit: a line with more decimals raises
TotalsError rather than being silently rounded a second time.

- Drafts carry a *preview* (`TotalsPreview`, read without locks during the billing run).
- Finalize recomputes under locks (`totals_inputs(..., lock=True)` in `invoicing.services`),
  freezes the breakdown and consumes coupons and credits idempotently per invoice id.

`invoice_totals`'s amount due also subtracts what was already paid, never going negative."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from catalog.discounts import CouponLike, DiscountLine, compute_discounts, coupon_used_up
from catalog.models import CouponDuration
from catalog.selectors import tax_determination_for_customer
from catalog.taxes import TaxDetermination, TaxRateLike, TaxResult, compute_tax
from common.money import format_money, quantize_money
from customers.locks import customer_lock
from customers.models import CreditGrant, CustomerBalanceTransaction
from customers.selectors import customer_credit_balance, prepaid_credit_available
from invoicing.coupons import coupon_redemptions_for_invoice
from invoicing.models import CouponRedemption, InvoiceReason

ZERO = Decimal(0)


# --- credits: how much of the credit balance and of prepaid credits an invoice uses -----------------

class CreditError(ValueError):
    """Inputs the credit rule cannot use (floats)."""


@dataclass(frozen=True)
class CreditApplication:
    credit_balance_applied: Decimal
    prepaid_applied: Decimal
    amount_due: Decimal


def apply_credits(*, total_after_tax: Decimal, credit_balance: Decimal, prepaid_available: Decimal,
                  currency: str) -> CreditApplication:
    """Both credits reduce the amount due after tax, never the taxable amount: the credit balance
    (credit notes, adjustments, net-credit invoices) pays first, up to the total; prepaid credits pay
    what is left; `amount_due` is the rest, never negative. A total of zero or less consumes nothing
    (a net-credit invoice is credited to the balance at finalize instead); a negative credit balance
    counts as zero. Callers pass only credit in the invoice currency (currencies are never added)."""
    for name, value in (("total_after_tax", total_after_tax), ("credit_balance", credit_balance),
                        ("prepaid_available", prepaid_available)):
        if not isinstance(value, Decimal):
            raise CreditError(f"{name} must be Decimal, got {type(value).__name__}")
    total = quantize_money(total_after_tax, currency)
    zero = quantize_money(ZERO, currency)
    if total <= 0:
        return CreditApplication(credit_balance_applied=zero, prepaid_applied=zero, amount_due=zero)
    from_balance = min(max(quantize_money(credit_balance, currency), zero), total)
    from_prepaid = min(max(quantize_money(prepaid_available, currency), zero), total - from_balance)
    return CreditApplication(credit_balance_applied=from_balance, prepaid_applied=from_prepaid,
                             amount_due=total - from_balance - from_prepaid)


# --- the engine (pure) ---------------------------------------------------------------------------

class TotalsError(ValueError):
    pass


@dataclass(frozen=True)
class InvoiceAmounts:
    """The engine's result: amounts only, no presentation."""
    currency: str
    subtotal: Decimal
    discounts: tuple[DiscountLine, ...]
    discount: Decimal
    taxable: Decimal
    tax: TaxResult
    total: Decimal
    credit_balance_applied: Decimal
    prepaid_applied: Decimal
    amount_due: Decimal

    @property
    def balance_credit(self) -> Decimal:
        """What a net-credit invoice gives the customer's credit balance (0 unless total < 0)."""
        return -self.total if self.total < 0 else quantize_money(Decimal(0), self.currency)


def compute_invoice_totals(*, currency: str, lines: Sequence[tuple] | None = None,
                           line_amounts: Sequence[Decimal] | None = None, coupons: Sequence[CouponLike] = (),
                           tax_rates: Sequence[TaxRateLike] = (), tax_note: str = "",
                           credit_balance: Decimal = ZERO, prepaid_available: Decimal = ZERO) -> InvoiceAmounts:
    """`lines` are (amount, taxable) pairs or (amount, taxable, discountable) triples
    (`line_discountable`); `line_amounts` is the shorthand for taxable, discountable lines."""
    if lines is None:
        lines = [(amount, True) for amount in (line_amounts or ())]
    amounts = [line[0] for line in lines]
    for index, amount in enumerate(amounts):
        if not isinstance(amount, Decimal):
            raise TotalsError(f"line {index}: amount must be Decimal, got {type(amount).__name__}")
        if quantize_money(amount, currency) != amount:
            raise TotalsError(f"line {index}: {amount} is not rounded to the {currency} minor unit.")
    undiscounted = sum((line[0] for line in lines if len(line) > 2 and not line[2]), ZERO)
    subtotal = quantize_money(sum(amounts, ZERO), currency)
    discounts = compute_discounts(subtotal=subtotal - quantize_money(undiscounted, currency), coupons=coupons,
                                  currency=currency)
    discount = quantize_money(sum((d.amount for d in discounts), ZERO), currency)
    taxable = subtotal - discount
    if all(line[1] for line in lines):
        tax = compute_tax(taxable_amount=taxable, rates=tax_rates, currency=currency, note=tax_note)
    else:
        taxable_lines = quantize_money(sum((line[0] for line in lines if line[1]), ZERO), currency)
        share = quantize_money(discount * taxable_lines / subtotal, currency) if discount and subtotal > 0 else ZERO
        tax = compute_tax(taxable_amount=taxable_lines - share, rates=tax_rates, currency=currency, note=tax_note)
    total = taxable + tax.total
    credits = apply_credits(total_after_tax=total, credit_balance=credit_balance,
                            prepaid_available=prepaid_available, currency=currency)
    return InvoiceAmounts(currency=currency, subtotal=subtotal, discounts=discounts, discount=discount,
                          taxable=taxable, tax=tax, total=total,
                          credit_balance_applied=credits.credit_balance_applied,
                          prepaid_applied=credits.prepaid_applied, amount_due=credits.amount_due)


# --- the invoice's totals ------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceTotals:
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    credit_balance_applied: Decimal
    prepaid_applied: Decimal
    amount_paid: Decimal
    amount_due: Decimal
    discount_lines: list = field(default_factory=list)
    tax_lines: list = field(default_factory=list)
    tax_note: str = ""
    balance_credit: Decimal = ZERO  # what a net-credit invoice gives the customer's balance
    discounts: tuple = ()  # the engine's DiscountLines (for coupon_redemptions_consume)

    @property
    def credits_applied(self) -> Decimal:
        return self.credit_balance_applied + self.prepaid_applied

    def as_fields(self) -> dict:
        """The Invoice fields these totals set."""
        return {"subtotal": self.subtotal, "discount": self.discount, "tax": self.tax, "total": self.total,
                "amount_paid": self.amount_paid, "amount_due": self.amount_due,
                "discount_lines": self.discount_lines, "tax_lines": self.tax_lines, "tax_note": self.tax_note,
                "credit_balance_applied": self.credit_balance_applied, "prepaid_applied": self.prepaid_applied}


def line_discountable(kind: str, amount: Decimal) -> bool:
    """Coupons discount every line except a credit for unused time (a negative proration line):
    it returns only what was charged for the fee after its discount (DESIGN.md §5)."""
    return not (kind == "proration" and amount < 0)


def _rate_text(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def invoice_totals(*, currency: str, line_amounts: Iterable[Decimal] | None = None,
                   lines: Sequence[tuple[Decimal, bool]] | None = None, coupons: Sequence = (),
                   tax: TaxDetermination | None = None, credit_balance: Decimal = ZERO,
                   prepaid_available: Decimal = ZERO, amount_paid: Decimal = ZERO) -> InvoiceTotals:
    """Totals of one invoice. `lines` are (amount, taxable) pairs, or (amount, taxable, discountable)
    triples (`line_discountable`: a credit for unused time is not discounted again);
    `line_amounts` is the shorthand for all-taxable lines. `coupons` in application order, `tax`
    from `catalog.selectors.tax_determination_for_customer`, credits in the invoice currency."""
    if lines is None:
        lines = [(Decimal(a), True) for a in (line_amounts or ())]
    lines = [(Decimal(line[0]), *line[1:]) for line in lines]
    engine = compute_invoice_totals(currency=currency, lines=lines, coupons=coupons,
                                    tax_rates=tuple(tax.rates) if tax is not None else (),
                                    tax_note=tax.note if tax is not None else "",
                                    credit_balance=credit_balance, prepaid_available=prepaid_available)
    tax_result, total, due = engine.tax, engine.total, engine.amount_due
    codes = {getattr(c, "pk", None): getattr(c, "code", "") for c in coupons}
    discount_lines = [{"coupon_id": d.coupon_id, "code": codes.get(d.coupon_id, ""), "description": d.description,
                       "amount": format_money(d.amount, currency)} for d in engine.discounts]
    tax_lines = [{"tax_rate_id": t.tax_rate_id, "name": t.name, "rate": _rate_text(t.rate),
                  "taxable_amount": format_money(t.taxable_amount, currency), "amount": format_money(t.amount, currency)}
                 for t in tax_result.lines]
    amount_due = quantize_money(max(due - amount_paid, ZERO), currency)
    return InvoiceTotals(
        subtotal=engine.subtotal, discount=engine.discount, tax=tax_result.total, total=quantize_money(total, currency),
        credit_balance_applied=engine.credit_balance_applied, prepaid_applied=engine.prepaid_applied,
        amount_paid=amount_paid,
        amount_due=amount_due, discount_lines=discount_lines, tax_lines=tax_lines, tax_note=tax_result.note,
        balance_credit=-quantize_money(total, currency) if total < 0 else ZERO, discounts=engine.discounts,
    )


# --- inputs: coupons, tax, credits -----------------------------------------------------------------

@dataclass
class TotalsInputs:
    redemptions: list = field(default_factory=list)
    tax: TaxDetermination | None = None
    credit_balance: Decimal = ZERO
    prepaid_available: Decimal = ZERO

    @property
    def coupons(self) -> list:
        return [r.coupon for r in self.redemptions]

    def describe(self) -> dict:
        """The inputs as audit data."""
        return {"coupons": [r.coupon.code for r in self.redemptions],
                "tax_rates": [{"id": r.pk, "name": r.name, "rate": str(r.rate)} for r in (self.tax.rates if self.tax else ())],
                "tax_reason": self.tax.reason if self.tax else "", "credit_balance": str(self.credit_balance),
                "prepaid_available": str(self.prepaid_available)}


def _tax_key(customer, on) -> tuple:
    return ((customer.country or "").upper(), (customer.region or "").strip().lower(), bool(customer.tax_exempt),
            bool((customer.tax_id or "").strip()), on)


class TaxCache:
    """`tax_determination_for_customer` depends only on the customer's country, region, exemption
    and whether it has a tax id (and the date): batches ask once per distinct key."""

    def __init__(self):
        self._cache: dict = {}

    def get(self, customer, on) -> TaxDetermination:
        key = _tax_key(customer, on)
        if key not in self._cache:
            self._cache[key] = tax_determination_for_customer(customer=customer, on=on)
        return self._cache[key]


def customers_with_coupons(customer_ids) -> set:
    return set(CouponRedemption.objects.filter(customer_id__in=list(customer_ids), removed_at__isnull=True,
                                               ended_at__isnull=True).values_list("customer_id", flat=True))


def customers_with_credit(customer_ids) -> set:
    ids = list(customer_ids)
    return (set(CustomerBalanceTransaction.objects.filter(customer_id__in=ids).values_list("customer_id", flat=True))
            | set(CreditGrant.objects.filter(customer_id__in=ids, remaining__gt=0).values_list("customer_id", flat=True)))


def totals_inputs(*, customer, subscription, currency: str, issue_date, lock: bool, credit_on=None,
                  tax_cache: TaxCache | None = None, coupons: bool = True, credit: bool = True) -> TotalsInputs:
    """What discounts, taxes and credits an invoice of `customer` gets. With `lock`, the coupon
    redemptions are locked (call inside the finalize transaction, after locking the invoice and
    before the customer row, the lock order every finalize path uses). `coupons` / `credit` False
    skip the queries for a customer known to have none (batch paths)."""
    inputs = TotalsInputs()
    if coupons:
        inputs.redemptions = coupon_redemptions_for_invoice(customer=customer, currency=currency,
                                                            subscription=subscription, lock=lock)
    inputs.tax = (tax_cache or TaxCache()).get(customer, issue_date)
    if credit:
        if lock:
            customer_lock(customer.pk)
        inputs.credit_balance = max(customer_credit_balance(customer=customer, currency=currency), ZERO)
        inputs.prepaid_available = prepaid_credit_available(customer=customer, currency=currency, on=credit_on)
    return inputs


class TotalsPreview:
    """Draft totals during a billing run, without locks: coupons, tax and credits as they stand, so
    drafts show the discount and tax they will get. Credits and coupon periods are counted down in
    memory across the drafts of one run, so two drafts of a customer do not both show the same
    credit. Finalize recomputes under locks; the preview is never consumed."""

    def __init__(self, customer_ids):
        ids = set(customer_ids)
        self.with_coupons = customers_with_coupons(ids)
        self.with_credit = customers_with_credit(ids)
        self.tax_cache = TaxCache()
        self.credit_used: dict = defaultdict(lambda: ZERO)
        self.prepaid_used: dict = defaultdict(lambda: ZERO)
        self.coupon_uses: dict = defaultdict(int)
        self.credit_read: dict = {}

    def totals(self, *, invoice, customer, subscription, lines: Sequence[tuple[Decimal, bool]]) -> InvoiceTotals:
        currency = invoice.currency
        inputs = totals_inputs(customer=customer, subscription=subscription, currency=currency,
                               issue_date=invoice.issue_date, lock=False, tax_cache=self.tax_cache,
                               coupons=customer.pk in self.with_coupons, credit=False)
        redemptions = []
        for redemption in inputs.redemptions:
            used = redemption.periods_applied + self.coupon_uses[redemption.pk]
            if coupon_used_up(redemption.coupon, used):
                continue
            redemptions.append(redemption)
        key = (customer.pk, currency)
        if customer.pk in self.with_credit and key not in self.credit_read:
            self.credit_read[key] = (max(customer_credit_balance(customer=customer, currency=currency), ZERO),
                                     prepaid_credit_available(customer=customer, currency=currency))
        balance, prepaid = self.credit_read.get(key, (ZERO, ZERO))
        totals = invoice_totals(currency=currency, lines=lines, coupons=[r.coupon for r in redemptions], tax=inputs.tax,
                                credit_balance=balance - self.credit_used[key],
                                prepaid_available=prepaid - self.prepaid_used[key])

        for redemption in redemptions:  # a repeating coupon counts billing periods (cycle invoices)
            if invoice.reason == InvoiceReason.SUBSCRIPTION_CYCLE or redemption.coupon.duration == CouponDuration.ONCE:
                self.coupon_uses[redemption.pk] += 1
        self.credit_used[key] += totals.credit_balance_applied
        self.prepaid_used[key] += totals.prepaid_applied
        return totals
