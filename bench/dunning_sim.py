"""Dunning simulation: the smart schedule (customer's best hour + pay-day alignment, retries on
days 1/3/6/10) vs a fixed schedule (days 1/3/5/7 at the time of day of the failure), the same
number of attempts (4), replayed through the real services.

    .venv/bin/python bench/dunning_sim.py [--customers 60] [--seed 14]

Synthetic customers (seeded random): each has a pay day (the 1st, the 15th or the last business
day of the month), an hour of the day at which its funds arrive, a number of days the money stays
after a pay day, a timezone, and a short history of past successful card payments (mostly at that
hour). Funds model: a charge succeeds when the local instant lies in [pay day at the funds hour,
+ k days), or on the odd day (15 %, seeded per customer and day) when money came in, from the
funds hour on. Each customer is simulated twice, identically, once under each policy.

What is real: customers, subscriptions-free invoices finalized by `invoicing.services.invoice_finalize`,
the charge on finalize (payments' hook, attempt rows, idempotency keys, `payment.failed`), case
opening/classification/planning by dunning's hooks, and `dunning_sweep` (what `run_dunning --as-of`
runs) stepped from one due instant to the next for 21 days. What is recorded: the gateway — a
stand-in for `payments.gateway.charge_off_session` answering from the funds model at the dunning
clock's instant (the sandbox's decline cards decline every charge, so they cannot model funds that
come and go). Invoice PDFs are stubbed (rendering is irrelevant to recovery).
Uses its own database (ledgerline_bench_dunning, recreated each run).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("BENCH_DB", "ledgerline_bench_dunning")

from bench._common import ensure_database, psql_connect, setup_django  # noqa: E402

ZONES = ["UTC", "Europe/Paris", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"]
PAYDAY_KINDS = ["first", "fifteenth", "last_business_day"]
START = datetime(2026, 1, 5, tzinfo=timezone.utc)


class Persona:
    def __init__(self, index: int, rng: random.Random):
        from zoneinfo import ZoneInfo

        self.index = index
        self.tz = ZoneInfo(rng.choice(ZONES))
        self.payday = rng.choice(PAYDAY_KINDS)
        self.funds_hour = rng.randint(6, 20)
        self.funded_days = rng.randint(2, 5)
        self.extra_day_seed = rng.randrange(1 << 30)
        self.history = []
        for _ in range(rng.randint(2, 6)):
            hour = self.funds_hour if rng.random() < 0.75 else rng.randint(0, 23)
            day = START.date() - timedelta(days=rng.randint(20, 300))
            self.history.append(datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), tzinfo=self.tz))
        # The first failure: a random instant in February–March at which the customer has no funds.
        while True:
            first = START + timedelta(days=rng.randint(25, 80), minutes=rng.randint(0, 24 * 60 - 1))
            if not self.funded(first):
                self.first_failure = first
                break

    def pay_days(self, year: int, month: int) -> date:
        from dunning.schedule import last_business_day

        if self.payday == "first":
            return date(year, month, 1)
        if self.payday == "fifteenth":
            return date(year, month, 15)
        return last_business_day(year, month)

    def funded(self, instant: datetime) -> bool:
        local = instant.astimezone(self.tz)
        for back in (0, 1):
            month = local.month - back
            year = local.year + (month - 1) // 12
            month = (month - 1) % 12 + 1
            payday = self.pay_days(year, month)
            start = datetime(payday.year, payday.month, payday.day, self.funds_hour, tzinfo=self.tz)
            if start <= local < start + timedelta(days=self.funded_days):
                return True
        extra = random.Random(f"{self.extra_day_seed}:{local.date().isoformat()}").random() < 0.15
        return extra and local.hour >= self.funds_hour


def recorded_gateway(personas_by_stripe_customer: dict):
    from dunning.services import dunning_now
    from payments import gateway

    def charge_off_session(*, stripe_customer, payment_method, amount, currency, idempotency_key, metadata=None,
                           description=""):
        persona = personas_by_stripe_customer[stripe_customer]
        intent = f"pi_sim_{uuid.uuid4().hex[:20]}"
        if persona.funded(dunning_now()):
            return gateway.ChargeResult(status="succeeded", payment_intent=intent, amount=amount)
        return gateway.ChargeResult(status="failed", payment_intent=intent, failure_code="card_declined",
                                    decline_code="insufficient_funds", advice_code="try_again_later",
                                    network_advice_code="02", message="Your card has insufficient funds.")

    return charge_off_session


def build(personas, policy_name: str):
    """One customer per persona under `policy_name` (by segment), its history, a card, an invoice
    finalized at the persona's first failure (the real charge-on-finalize path)."""
    from customers.models import Customer
    from invoicing.models import Invoice, InvoiceLine, InvoiceReason
    from payments.models import AttemptStatus, PaymentAttempt, PaymentMethod

    mapping = {}
    for persona in personas:
        cust = Customer.objects.create(external_id=f"{policy_name}-{persona.index}", name=f"Sim {persona.index}",
                                       currency="USD", email=f"sim{persona.index}@example.com",
                                       timezone=str(persona.tz), collection_method="charge_automatically",
                                       metadata={"segment": policy_name}, stripe_customer_id=f"cus_{policy_name}_{persona.index}")
        mapping[cust.stripe_customer_id] = persona
        PaymentMethod.objects.create(customer=cust, stripe_payment_method=f"pm_{policy_name}_{persona.index}",
                                     brand="visa", last4="4242", exp_month=12, exp_year=2034, is_default=True)
        for n, at in enumerate(persona.history):
            old = Invoice.objects.create(customer=cust, currency="USD", reason=InvoiceReason.MANUAL, status="paid",
                                         number=f"HIST-{policy_name}-{persona.index}-{n}",
                                         billing_date=at.date(), issue_date=at.date(), total=Decimal("49.00"),
                                         amount_paid=Decimal("49.00"), amount_due=0)
            PaymentAttempt.objects.create(invoice=old, customer=cust, attempt_number=1, amount=Decimal("49.00"),
                                          currency="USD", status=AttemptStatus.SUCCEEDED, completed_at=at,
                                          stripe_payment_intent=f"pi_hist_{policy_name}_{persona.index}_{n}")
        invoice = Invoice.objects.create(customer=cust, currency="USD", reason=InvoiceReason.MANUAL,
                                         billing_date=persona.first_failure.date(), issue_date=persona.first_failure.date())
        InvoiceLine.objects.create(invoice=invoice, position=0, kind="adjustment", description="Plan",
                                   amount=Decimal("49.00"), taxable=False)
        persona_invoice = invoice
        yield cust, persona, persona_invoice, mapping


def run(customers: int, seed: int) -> dict:
    from unittest import mock

    from django.db.models import Min

    from dunning.models import DunningCase, DunningPolicy, DunningStep
    from dunning.services import dunning_clock, dunning_sweep, policy_default
    from invoicing.services import invoice_finalize

    rng = random.Random(seed)
    personas = [Persona(i, rng) for i in range(customers)]
    policy_default()
    DunningPolicy.objects.create(name="smart", segment="smart")  # the default policy: days 1/3/6/10, smart hour, pay days
    DunningPolicy.objects.create(name="fixed", segment="fixed", retry_days=[1, 3, 5, 7], smart_timing=False,
                                 payday_alignment=False, fixed_time_of_day=True)
    mapping: dict = {}
    with mock.patch("payments.gateway.charge_off_session", recorded_gateway(mapping)), \
            mock.patch("invoicing.services._after_finalize", lambda ids: None), \
            mock.patch("invoicing.pdf.invoice_pdf_bytes", lambda invoice: b"%PDF-1.4 simulated\n"):
        for name in ("smart", "fixed"):
            for cust, persona, invoice, m in build(personas, name):
                mapping.update(m)
                with dunning_clock(persona.first_failure):
                    invoice_finalize(invoice=invoice)
        sweeps = 0
        while True:
            nxt = DunningStep.objects.filter(status="scheduled").aggregate(at=Min("scheduled_at"))["at"]
            if nxt is None:
                break
            dunning_sweep(as_of=nxt)
            sweeps += 1
    results = {}
    for name in ("smart", "fixed"):
        cases = DunningCase.objects.filter(policy__name=name)
        opened = cases.count()
        recovered = cases.filter(status="recovered").count()
        retries = DunningStep.objects.filter(case__policy__name=name, kind="retry", status="done").count()
        results[name] = {"cases": opened, "recovered": recovered, "rate": recovered / opened if opened else 0.0,
                         "retries": retries}
    results["sweeps"] = sweeps
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"  # the charge on finalize runs in this process
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    ensure_database(fresh=True)
    with psql_connect() as conn:  # a throwaway database: no fsync wait per commit
        conn.execute(f"ALTER DATABASE {os.environ['BENCH_DB']} SET synchronous_commit = off")
    setup_django()
    started = time.monotonic()
    results = run(args.customers, args.seed)
    smart, fixed = results["smart"], results["fixed"]
    ratio = smart["rate"] / fixed["rate"] if fixed["rate"] else float("inf")
    print(f"customers per schedule: {args.customers} (seed {args.seed}); every first charge declined "
          f"(insufficient_funds); sweeps: {results['sweeps']}; {time.monotonic() - started:.1f} s")
    print(f"smart  (days 1/3/6/10, best hour, pay days): recovered {smart['recovered']}/{smart['cases']} "
          f"= {smart['rate']:.1%} with {smart['retries']} retries")
    print(f"fixed  (days 1/3/5/7, failure's time of day):  recovered {fixed['recovered']}/{fixed['cases']} "
          f"= {fixed['rate']:.1%} with {fixed['retries']} retries")
    print(f"smart / fixed = {ratio:.2f}x (target >= 1.2x): {'OK' if ratio >= 1.2 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
