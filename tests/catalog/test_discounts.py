"""Coupons: the pure discount engine (stacking, floors, rounding) and the coupon services
(validation, application rules, consumption once / repeating / forever, idempotent per invoice)."""

import datetime
from dataclasses import dataclass
from decimal import Decimal as D

import pytest

from catalog.discounts import DiscountError, compute_discounts
from catalog.models import Coupon
from catalog.services import coupon_create, coupon_update
from common.errors import ApplicationError, ConflictError
from common.models import AuditEvent
from invoicing.coupons import coupon_apply, coupon_redemptions_consume, coupon_redemptions_for_invoice, coupon_remove
from invoicing.models import CouponRedemption, CouponUsage
from subscriptions.models import Subscription
from tests.catalog.factories import PlanVersionFactory
from tests.customers.factories import CustomerFactory
from tests.race import race


@dataclass
class C:
    code: str
    kind: str
    amount_off: D | None = None
    percent_off: D | None = None
    currency: str = ""
    name: str = ""
    id: int | None = None


def pct(p, code="P", id=None):
    return C(code=code, kind="percent", percent_off=D(p), id=id)


def fixed(a, currency="USD", code="F", id=None):
    return C(code=code, kind="fixed", amount_off=D(a), currency=currency, id=id)


# --- pure engine ---------------------------------------------------------------------------------

def test_percent_coupon_rounds_half_up():
    # 149.99 × 10% = 14.999 → 15.00
    [line] = compute_discounts(subtotal=D("149.99"), coupons=[pct("10", id=3)], currency="USD")
    assert (line.coupon_id, line.amount) == (3, D("15.00"))
    assert line.description == "P (10% off)"
    # 0.05 × 10% = 0.005 → 0.01
    assert compute_discounts(subtotal=D("0.05"), coupons=[pct("10")], currency="USD")[0].amount == D("0.01")


def test_stacking_applies_in_order_each_on_what_remains():
    # 200.00: 10% → 20.00 (remains 180.00), then 25.00 fixed → remains 155.00
    lines = compute_discounts(subtotal=D("200.00"), coupons=[pct("10"), fixed("25")], currency="USD")
    assert [line.amount for line in lines] == [D("20.00"), D("25.00")]
    # the other order: 25.00 (remains 175.00), then 10% of 175.00 = 17.50 → remains 157.50
    lines = compute_discounts(subtotal=D("200.00"), coupons=[fixed("25"), pct("10")], currency="USD")
    assert [line.amount for line in lines] == [D("25.00"), D("17.50")]
    # two percent coupons compound: 100.00 → 50% = 50.00, then 50% of 50.00 = 25.00
    lines = compute_discounts(subtotal=D("100.00"), coupons=[pct("50"), pct("50")], currency="USD")
    assert [line.amount for line in lines] == [D("50.00"), D("25.00")]


def test_fixed_coupon_larger_than_subtotal_floors_at_zero():
    lines = compute_discounts(subtotal=D("30.00"), coupons=[fixed("50.00"), pct("10")], currency="USD")
    assert [line.amount for line in lines] == [D("30.00"), D("0.00")]


def test_no_discount_on_zero_or_negative_subtotal():
    lines = compute_discounts(subtotal=D("-20.00"), coupons=[fixed("5"), pct("10")], currency="USD")
    assert [line.amount for line in lines] == [D("0"), D("0.00")]
    assert all(line.amount == 0 for line in lines)


def test_jpy_and_kwd_discounts():
    # 3500 × 15% = 525; 10,001 × 15% = 1500.15 → 1500
    assert compute_discounts(subtotal=D("3500"), coupons=[pct("15")], currency="JPY")[0].amount == D("525")
    assert compute_discounts(subtotal=D("10001"), coupons=[pct("15")], currency="JPY")[0].amount == D("1500")
    # 13.458 × 12.5% = 1.68225 → 1.682
    assert compute_discounts(subtotal=D("13.458"), coupons=[pct("12.5")], currency="KWD")[0].amount == D("1.682")


def test_fixed_coupon_in_another_currency_is_refused():
    with pytest.raises(DiscountError):
        compute_discounts(subtotal=D("100.00"), coupons=[fixed("10", currency="EUR")], currency="USD")


def test_engine_rejects_floats_and_unknown_kinds():
    with pytest.raises(DiscountError):
        compute_discounts(subtotal=100.0, coupons=[], currency="USD")
    with pytest.raises(DiscountError):
        compute_discounts(subtotal=D("1"), coupons=[C(code="x", kind="bogo")], currency="USD")
    with pytest.raises(DiscountError):
        compute_discounts(subtotal=D("1"), coupons=[C(code="x", kind="percent", percent_off=10.0)], currency="USD")


# --- services ------------------------------------------------------------------------------------

pytestdb = pytest.mark.django_db


def subscribe(customer, version, external_id):
    return Subscription.objects.create(external_id=external_id, customer=customer, plan_version=version,
                                       start_date=datetime.date(2026, 1, 1))


@pytest.fixture
def world(db):
    pro = PlanVersionFactory(plan__code="pro")
    basic = PlanVersionFactory(plan__code="basic")
    customer = CustomerFactory(external_id="acme")
    return {
        "customer": customer, "pro": pro.plan, "basic": basic.plan,
        "sub_pro": subscribe(customer, pro, "sub_pro"), "sub_basic": subscribe(customer, basic, "sub_basic"),
    }


@pytestdb
def test_coupon_create_percent_and_fixed():
    ten = coupon_create(code="TEN", name="10% off", kind="percent", percent_off="10", duration="repeating",
                        duration_periods=3, actor="tester")
    five = coupon_create(code="FIVE", name="5 off", kind="fixed", amount_off="5.00", currency="usd")
    ten.refresh_from_db()
    five.refresh_from_db()
    assert (ten.percent_off, ten.amount_off, ten.currency, ten.duration_periods) == (D("10"), None, "", 3)
    assert (five.amount_off, five.currency, five.duration, five.duration_periods) == (D("5"), "USD", "once", None)
    assert AuditEvent.objects.filter(action="coupon.created").count() == 2
    assert ten.history.count() == 1


@pytestdb
def test_coupon_create_duplicate_code_is_409():
    coupon_create(code="X", name="x", kind="percent", percent_off="10")
    with pytest.raises(ConflictError):
        coupon_create(code="X", name="x", kind="percent", percent_off="20")


@pytestdb
@pytest.mark.parametrize("kwargs,field", [
    ({"kind": "fixed", "amount_off": "5.001", "currency": "USD"}, "amount_off"),
    ({"kind": "fixed", "amount_off": "5", "currency": ""}, "currency"),
    ({"kind": "fixed", "amount_off": "0", "currency": "USD"}, "amount_off"),
    ({"kind": "fixed", "amount_off": "1.5", "currency": "JPY"}, "amount_off"),
    ({"kind": "fixed", "amount_off": "5", "currency": "USD", "percent_off": "5"}, "percent_off"),
    ({"kind": "percent", "percent_off": "0"}, "percent_off"),
    ({"kind": "percent", "percent_off": "100.01"}, "percent_off"),
    ({"kind": "percent", "percent_off": "10", "amount_off": "5"}, "amount_off"),
    ({"kind": "percent", "percent_off": "10", "duration": "repeating"}, "duration_periods"),
    ({"kind": "percent", "percent_off": "10", "duration": "repeating", "duration_periods": 0}, "duration_periods"),
    ({"kind": "percent", "percent_off": "10", "duration": "forever", "duration_periods": 2}, "duration_periods"),
    ({"kind": "percent", "percent_off": "10", "duration": "weekly"}, "duration"),
    ({"kind": "percent", "percent_off": "10", "applies_to_plans": ["nope"]}, "applies_to_plans"),
    ({"kind": "percent", "percent_off": "10", "max_redemptions": 0}, "max_redemptions"),
    ({"kind": "bogo"}, "kind"),
])
def test_coupon_create_rejects_bad_input(kwargs, field):
    with pytest.raises(ApplicationError) as exc:
        coupon_create(code="BAD", name="bad", **kwargs)
    assert exc.value.status_code == 400 and field in exc.value.fields
    assert not Coupon.objects.exists()


def test_fixed_coupon_plans_must_share_its_currency(world):
    with pytest.raises(ApplicationError) as exc:
        coupon_create(code="EUR5", name="5", kind="fixed", amount_off="5", currency="EUR", applies_to_plans=["pro"])
    assert "applies_to_plans" in exc.value.fields


def test_apply_to_customer_and_subscription(world):
    coupon = coupon_create(code="TEN", name="10%", kind="percent", percent_off="10", duration="forever")
    other = coupon_create(code="FIVE", name="5%", kind="percent", percent_off="5", duration="forever")
    on_customer = coupon_apply(coupon=coupon, customer=world["customer"], actor="tester")
    on_sub = coupon_apply(coupon=other, customer=world["customer"], subscription=world["sub_pro"])
    assert on_customer.subscription is None and on_sub.subscription == world["sub_pro"]
    assert AuditEvent.objects.filter(action="coupon.applied").count() == 2
    with pytest.raises(ConflictError) as exc:
        coupon_apply(coupon=coupon, customer=world["customer"])
    assert exc.value.code == "coupon_already_applied"


def test_same_coupon_cannot_cover_one_invoice_twice(world):
    """Customer-wide already covers the subscription's invoices, and the other way round."""
    coupon = coupon_create(code="TEN", name="10%", kind="percent", percent_off="10", duration="forever")
    coupon_apply(coupon=coupon, customer=world["customer"])
    with pytest.raises(ConflictError) as exc:
        coupon_apply(coupon=coupon, customer=world["customer"], subscription=world["sub_pro"])
    assert exc.value.code == "coupon_already_applied"

    other = coupon_create(code="FIVE", name="5%", kind="percent", percent_off="5", duration="forever")
    coupon_apply(coupon=other, customer=world["customer"], subscription=world["sub_pro"])
    with pytest.raises(ConflictError):
        coupon_apply(coupon=other, customer=world["customer"])


def test_apply_checks_currency_of_fixed_coupons(world):
    eur = coupon_create(code="EUR5", name="5", kind="fixed", amount_off="5", currency="EUR")
    with pytest.raises(ApplicationError) as exc:
        coupon_apply(coupon=eur, customer=world["customer"])
    assert exc.value.status_code == 400 and "coupon" in exc.value.fields


def test_apply_checks_plan_applicability(world):
    coupon = coupon_create(code="PRO", name="pro only", kind="percent", percent_off="20", applies_to_plans=["pro"])
    coupon_apply(coupon=coupon, customer=world["customer"], subscription=world["sub_pro"])
    with pytest.raises(ApplicationError) as exc:
        coupon_apply(coupon=coupon, customer=world["customer"], subscription=world["sub_basic"])
    assert exc.value.status_code == 400 and "subscription" in exc.value.fields


def test_apply_subscription_of_another_customer_is_400(world):
    coupon = coupon_create(code="TEN", name="10%", kind="percent", percent_off="10")
    with pytest.raises(ApplicationError) as exc:
        coupon_apply(coupon=coupon, customer=CustomerFactory(), subscription=world["sub_pro"])
    assert "subscription" in exc.value.fields


def test_apply_after_redeem_by_is_409(world):
    coupon = coupon_create(code="SPRING", name="spring", kind="percent", percent_off="10",
                           redeem_by=datetime.date(2026, 3, 31))
    coupon_apply(coupon=coupon, customer=world["customer"], on=datetime.date(2026, 3, 31))  # last day still fine
    with pytest.raises(ConflictError) as exc:
        coupon_apply(coupon=coupon, customer=CustomerFactory(), on=datetime.date(2026, 4, 1))
    assert exc.value.code == "coupon_expired" and exc.value.status_code == 409


def test_max_redemptions_is_409(world):
    coupon = coupon_create(code="TWO", name="two", kind="percent", percent_off="10", max_redemptions=2)
    first = coupon_apply(coupon=coupon, customer=world["customer"])
    coupon_remove(redemption=first)  # removed redemptions still count
    coupon_apply(coupon=coupon, customer=CustomerFactory())
    with pytest.raises(ConflictError) as exc:
        coupon_apply(coupon=coupon, customer=CustomerFactory())
    assert exc.value.code == "coupon_max_redemptions"
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 2


def test_inactive_coupon_is_409(world):
    coupon = coupon_create(code="OFF", name="off", kind="percent", percent_off="10")
    coupon_update(coupon=coupon, active=False)
    with pytest.raises(ConflictError) as exc:
        coupon_apply(coupon=coupon, customer=world["customer"])
    assert exc.value.code == "coupon_inactive"


def test_coupon_update_never_changes_amounts(world):
    coupon = coupon_create(code="TEN", name="10%", kind="percent", percent_off="10", max_redemptions=5)
    coupon_apply(coupon=coupon, customer=world["customer"])
    coupon_apply(coupon=coupon, customer=CustomerFactory())
    with pytest.raises(ConflictError):
        coupon_update(coupon=coupon, max_redemptions=1)
    coupon_update(coupon=coupon, name="Ten percent", max_redemptions=None, redeem_by=datetime.date(2027, 1, 1))
    coupon.refresh_from_db()
    assert (coupon.name, coupon.max_redemptions, coupon.percent_off) == ("Ten percent", None, D("10"))


def test_remove_stops_future_invoices(world):
    coupon = coupon_create(code="TEN", name="10%", kind="percent", percent_off="10", duration="forever")
    redemption = coupon_apply(coupon=coupon, customer=world["customer"])
    coupon_remove(redemption=redemption, actor="finance")
    assert coupon_redemptions_for_invoice(customer=world["customer"], currency="USD") == []
    with pytest.raises(ConflictError):
        coupon_remove(redemption=redemption)


def test_redemptions_for_invoice_filters_scope_plan_and_currency(world):
    customer, sub_pro, sub_basic = world["customer"], world["sub_pro"], world["sub_basic"]
    everyone = coupon_apply(coupon=coupon_create(code="ALL", name="all", kind="percent", percent_off="5",
                                                 duration="forever"), customer=customer)
    pro_only = coupon_apply(coupon=coupon_create(code="PRO", name="pro", kind="fixed", amount_off="10",
                                                 currency="USD", applies_to_plans=["pro"], duration="forever"),
                            customer=customer)
    on_basic = coupon_apply(coupon=coupon_create(code="B", name="b", kind="percent", percent_off="1",
                                                 duration="forever"), customer=customer, subscription=sub_basic)
    assert coupon_redemptions_for_invoice(customer=customer, currency="USD", subscription=sub_pro) == [everyone, pro_only]
    assert coupon_redemptions_for_invoice(customer=customer, currency="USD", subscription=sub_basic,
                                          lock=True) == [everyone, on_basic]
    # a customer-level invoice (no subscription) gets only customer-wide coupons for every plan
    assert coupon_redemptions_for_invoice(customer=customer, currency="USD") == [everyone]
    # a fixed USD coupon never discounts an invoice in another currency
    assert coupon_redemptions_for_invoice(customer=customer, currency="EUR", subscription=sub_pro) == [everyone]


# --- consumption ---------------------------------------------------------------------------------

def _consume(redemption, invoice_id):
    coupon_redemptions_consume(redemptions=[redemption], invoice_id=invoice_id)
    redemption.refresh_from_db()
    return redemption


def test_once_coupon_is_used_up_by_one_invoice(world):
    redemption = coupon_apply(coupon=coupon_create(code="ONCE", name="once", kind="percent", percent_off="10"),
                              customer=world["customer"])
    redemption = _consume(redemption, "inv-1")
    assert (redemption.periods_applied, redemption.ended_at is not None, redemption.is_active) == (1, True, False)
    assert coupon_redemptions_for_invoice(customer=world["customer"], currency="USD") == []
    with pytest.raises(ConflictError):
        _consume(redemption, "inv-2")


def test_repeating_coupon_lasts_n_invoices(world):
    redemption = coupon_apply(coupon=coupon_create(code="REP", name="rep", kind="percent", percent_off="10",
                                                   duration="repeating", duration_periods=3),
                              customer=world["customer"])
    for n, invoice in enumerate(["inv-1", "inv-2"], start=1):
        redemption = _consume(redemption, invoice)
        assert (redemption.periods_applied, redemption.is_active) == (n, True)
    redemption = _consume(redemption, "inv-3")
    assert (redemption.periods_applied, redemption.is_active) == (3, False)


def test_forever_coupon_never_ends(world):
    redemption = coupon_apply(coupon=coupon_create(code="EVER", name="ever", kind="percent", percent_off="10",
                                                   duration="forever"), customer=world["customer"])
    for n in range(1, 6):
        redemption = _consume(redemption, f"inv-{n}")
    assert (redemption.periods_applied, redemption.is_active) == (5, True)


def test_consumption_is_idempotent_per_invoice(world):
    redemption = coupon_apply(coupon=coupon_create(code="REP", name="rep", kind="percent", percent_off="10",
                                                   duration="repeating", duration_periods=2),
                              customer=world["customer"])
    discounts = compute_discounts(subtotal=D("149.99"), coupons=[redemption.coupon], currency="USD")
    for _ in range(3):
        coupon_redemptions_consume(redemptions=[redemption], invoice_id="inv-1", discounts=discounts)
    redemption.refresh_from_db()
    assert (redemption.periods_applied, redemption.is_active) == (1, True)
    [usage] = CouponUsage.objects.filter(redemption=redemption)
    assert (usage.invoice_id, usage.amount) == ("inv-1", D("15.00"))
    # the once-used-up case: a rerun for the invoice that used it up is still a no-op, not a 409
    redemption = _consume(redemption, "inv-2")
    assert not redemption.is_active
    redemption = _consume(redemption, "inv-2")
    assert redemption.periods_applied == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_consumption_of_one_invoice_counts_once():
    customer = CustomerFactory()
    redemption = coupon_apply(coupon=coupon_create(code="EVER", name="ever", kind="percent", percent_off="10",
                                                   duration="forever"), customer=customer)
    failures = race(*[lambda: coupon_redemptions_consume(redemptions=[redemption], invoice_id="inv-race")] * 2,
                    barrier_timeout=10, join_timeout=30).errors
    assert failures == []
    redemption.refresh_from_db()
    assert redemption.periods_applied == 1
    assert CouponUsage.objects.filter(redemption=redemption).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_applies_respect_max_redemptions():
    coupon = coupon_create(code="ONE", name="one", kind="percent", percent_off="10", max_redemptions=1)
    customers = [CustomerFactory(), CustomerFactory()]
    raced = race(*[lambda c=c: coupon_apply(coupon=coupon, customer=c) for c in customers],
                 barrier_timeout=10, join_timeout=30)
    outcomes = ["ok"] * len(raced.returned) + [e.code if isinstance(e, ConflictError) else repr(e) for e in raced.errors]
    assert sorted(outcomes) == ["coupon_max_redemptions", "ok"]
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 1
