"""The local Stripe sandbox: `localstripe` (PyPI) extended with what collections need (DESIGN.md §7).

A test and demo tool: only `manage.py stripe_sandbox` and the test suite import this module; the
product reaches it over HTTP through `STRIPE_API_BASE` with the official `stripe` SDK, exactly as
it would reach Stripe.

What it adds to localstripe:
- test PaymentMethods `pm_card_visa` / `pm_card_mastercard` (succeed), `pm_card_chargeDeclined<Reason>`
  (attaches, then declines every charge with that reason's `decline_code`, `advice_code` and
  `network_advice_code`), `pm_card_authenticationRequired` (declines off-session charges with
  `authentication_required`) and `pm_card_createDispute` (succeeds, then a `charge.dispute.created`
  webhook follows);
- card errors shaped like Stripe's (HTTP 402, `type: card_error`, `decline_code`, `payment_intent`);
- `Idempotency-Key`: a POST with a key seen before on the same path replays the first response
  (same status and body, header `Idempotent-Replayed: true`); a key reused on another path or with
  other parameters is a 400 `idempotency_error`; concurrent requests with one key run one at a time;
- `charge.refunded` events on refunds, and `POST /_sandbox/charges/{id}/dispute` to open a dispute;
- an in-memory store (localstripe pickles to a shared /tmp file by default) and a 127.0.0.1 bind.
Webhooks are signed like Stripe's: `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256 of "ts.body">`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle

from aiohttp import web
from localstripe import resources, webhooks
from localstripe import server as ls_server
from localstripe.errors import UserError
from localstripe.resources import Charge, Event, PaymentIntent, PaymentMethod, Refund, store
from localstripe.webhooks import register_webhook, schedule_webhook

logger = logging.getLogger("payments.sandbox")

# Reason in the test id → (decline_code, advice_code, network_advice_code, message).
DECLINES = {
    "InsufficientFunds": ("insufficient_funds", "try_again_later", "02", "Your card has insufficient funds."),
    "ExpiredCard": ("expired_card", "confirm_card_data", "01", "Your card has expired."),
    "LostCard": ("lost_card", "do_not_try_again", "03", "Your card was declined."),
    "StolenCard": ("stolen_card", "do_not_try_again", "03", "Your card was declined."),
    "ProcessingError": ("processing_error", "try_again_later", "02",
                        "An error occurred while processing your card. Try again in a little bit."),
    "Fraudulent": ("fraudulent", "do_not_try_again", "03", "Your card was declined."),
    "DoNotHonor": ("do_not_honor", "try_again_later", "02", "Your card was declined."),
}
AUTHENTICATION_REQUIRED = ("authentication_required", "try_again_later", None,
                           "Your card was declined. This transaction requires authentication.")

_CARDS = {  # test id → (number, brand)
    "pm_card_visa": ("4242424242424242", "visa"),
    "pm_card_mastercard": ("5555555555554444", "mastercard"),
    "pm_card_authenticationRequired": ("4000002760003184", "visa"),
    "pm_card_createDispute": ("4000000000000259", "visa"),
}
_DECLINE_NUMBERS = {
    "InsufficientFunds": "4000000000009995", "ExpiredCard": "4000000000000069", "LostCard": "4000000000009987",
    "StolenCard": "4000000000009979", "ProcessingError": "4000000000000119", "Fraudulent": "4100000000000019",
    "DoNotHonor": "4000000000000002",
}


def _test_card(id: str) -> PaymentMethod | None:
    decline = None
    if id in _CARDS:
        number, brand = _CARDS[id]
        if id == "pm_card_authenticationRequired":
            decline = AUTHENTICATION_REQUIRED
    elif id.startswith("pm_card_chargeDeclined") and id[len("pm_card_chargeDeclined"):] in DECLINES:
        reason = id[len("pm_card_chargeDeclined"):]
        number, brand, decline = _DECLINE_NUMBERS[reason], "visa", DECLINES[reason]
    else:
        return None
    pm = PaymentMethod(type="card", card=dict(number=number, exp_month="12", exp_year="2034", cvc="123"))
    pm.card["brand"] = brand
    pm._ll_decline = decline
    pm._ll_dispute = id == "pm_card_createDispute"
    return pm


_original_canonical = PaymentMethod._try_get_canonical_test_article.__func__
_original_attach_declined = PaymentMethod._attaching_is_declined
_original_charge_declined = PaymentMethod._charging_is_declined
_original_requires_auth = PaymentMethod._requires_authentication


def _canonical(cls, id):
    return _test_card(id) or _original_canonical(cls, id)


def _attaching_is_declined(self):
    if hasattr(self, "_ll_decline"):
        return False
    return _original_attach_declined(self)


def _charging_is_declined(self):
    if hasattr(self, "_ll_decline"):
        return self._ll_decline is not None
    return _original_charge_declined(self)


def _requires_authentication(self):
    if hasattr(self, "_ll_decline"):
        return False  # off-session charges fail instead (see AUTHENTICATION_REQUIRED)
    return _original_requires_auth(self)


def _charge_set_auth_failure(self):
    pm = PaymentMethod._api_retrieve(self.payment_method)
    decline = getattr(pm, "_ll_decline", None) or ("generic_decline", None, None, "Your card was declined.")
    code, advice, network_advice, message = decline
    self.status = "failed"
    self.failure_code = "authentication_required" if code == "authentication_required" else "card_declined"
    self.failure_message = message
    self.outcome = {"type": "issuer_declined", "network_status": "declined_by_network", "reason": code,
                    "advice_code": advice, "network_advice_code": network_advice}
    self._ll_error = {"code": self.failure_code, "decline_code": code, "advice_code": advice,
                      "network_advice_code": network_advice, "message": message}


def _charge_raise_failure(self):
    details = dict(getattr(self, "_ll_error", None) or {"code": self.failure_code, "message": self.failure_message})
    details.update({"type": "card_error", "charge": self.id})
    if self.payment_intent:
        details["payment_intent"] = PaymentIntent._api_retrieve(self.payment_intent)._export()
    error = UserError(402, details["message"], details)
    error.body["error"]["type"] = "card_error"
    raise error


def _pi_last_payment_error(self):
    if self._authentication_failed:
        return {"type": "card_error", "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication."}
    if self.latest_charge and self.latest_charge.status == "failed":
        details = dict(getattr(self.latest_charge, "_ll_error", None) or {
            "code": self.latest_charge.failure_code, "message": self.latest_charge.failure_message})
        details.update({"type": "card_error", "charge": self.latest_charge.id})
        return details
    return None


_original_pi_on_success = PaymentIntent._on_success


def _pi_on_success(self):
    _original_pi_on_success(self)
    charge = self.latest_charge
    pm = PaymentMethod._api_retrieve(self.payment_method) if self.payment_method else None
    if charge is not None and getattr(pm, "_ll_dispute", False):
        _open_dispute(charge, reason="fraudulent")


_original_refund_init = Refund.__init__
_original_pi_init = PaymentIntent.__init__


def _pi_init(self, *args, description=None, **kwargs):
    _original_pi_init(self, *args, **kwargs)
    self.description = description


def _refund_init(self, *args, **kwargs):
    _original_refund_init(self, *args, **kwargs)
    charge = Charge._api_retrieve(self.charge)
    schedule_webhook(Event("charge.refunded", charge))


class Dispute(resources.StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: Charge, reason: str):
        super().__init__()
        self.charge = charge.id
        self.payment_intent = charge.payment_intent
        self.amount = charge.amount
        self.currency = charge.currency
        self.reason = reason
        self.status = "needs_response"


def _open_dispute(charge: Charge, *, reason: str) -> Dispute:
    dispute = Dispute(charge, reason)
    schedule_webhook(Event("charge.dispute.created", dispute))
    return dispute


async def dispute_charge(request):
    charge = Charge._api_retrieve(request.match_info["id"])
    data = await ls_server.get_post_data(request) or {}
    if charge.status != "succeeded":
        raise UserError(400, "Only a succeeded charge can be disputed.")
    return ls_server.json_response(_open_dispute(charge, reason=data.get("reason", "fraudulent"))._export())


async def unregister_webhook(request):
    webhooks._webhooks.pop(request.match_info["id"], None)
    return web.Response()


# --- Idempotency-Key -------------------------------------------------------------------------------

_idempotent: dict[str, tuple[str, str, int, bytes]] = {}  # key → (path, params hash, status, body)
_key_locks: dict[str, asyncio.Lock] = {}


@web.middleware
async def idempotency_middleware(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    lock = _key_locks.setdefault(key, asyncio.Lock())
    async with lock:
        body = await request.read()
        fingerprint = hashlib.sha256(body).hexdigest()
        seen = _idempotent.get(key)
        if seen is not None:
            path, params, status, payload = seen
            if path != request.path or params != fingerprint:
                return ls_server.json_response({"error": {
                    "type": "idempotency_error",
                    "message": f"Keys for idempotent requests can only be used with the same parameters they were "
                               f"first used with. Try using a key other than '{key}' if you meant to execute a "
                               f"different request."}}, status=400)
            return web.Response(body=payload, status=status, content_type="application/json",
                                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key})
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        if response.status < 500:
            _idempotent[key] = (request.path, fingerprint, response.status, response.body)
        response.headers["Idempotency-Key"] = key
        return response


_state_file: str | None = None  # None: in memory only (tests); the demo keeps its state under .run/


def _store_dump(self) -> None:
    if _state_file:
        tmp = _state_file + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)

        os.replace(tmp, _state_file)


def _store_load(self) -> None:
    if _state_file:
        try:
            with open(_state_file, "rb") as f:
                data = pickle.load(f)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return
        dict.clear(self)
        dict.update(self, data)


def _install() -> None:
    """Patch localstripe once (idempotent)."""
    if getattr(resources, "_ledgerline_sandbox", False):
        return
    resources._ledgerline_sandbox = True
    resources.Store.dump_to_disk = _store_dump
    resources.Store.try_load_from_disk = _store_load
    PaymentMethod._try_get_canonical_test_article = classmethod(_canonical)
    PaymentMethod._attaching_is_declined = _attaching_is_declined
    PaymentMethod._charging_is_declined = _charging_is_declined
    PaymentMethod._requires_authentication = _requires_authentication
    Charge._set_auth_failure = _charge_set_auth_failure
    Charge._raise_failure = _charge_raise_failure
    PaymentIntent.last_payment_error = property(_pi_last_payment_error)
    PaymentIntent._on_success = _pi_on_success
    Refund.__init__ = _refund_init
    PaymentIntent.__init__ = _pi_init


def build_app() -> web.Application:
    """localstripe's routes behind our idempotency middleware, plus the dispute helper."""
    _install()
    app = ls_server.app
    if not getattr(app, "_ledgerline_wrapped", False):
        app.middlewares.insert(0, idempotency_middleware)
        # The error middleware must turn UserErrors into responses before idempotency stores them.
        app.middlewares.remove(ls_server.error_middleware)
        app.middlewares.insert(1, ls_server.error_middleware)
        app.router.add_post("/_sandbox/charges/{id}/dispute", dispute_charge)
        app.router.add_delete("/_config/webhooks/{id}", unregister_webhook)
        app._ledgerline_wrapped = True
    return app


def serve(*, host: str = "127.0.0.1", port: int, webhook_url: str | None = None,
          webhook_secret: str | None = None, state_file: str | None = None, ready=None) -> None:
    """Run the sandbox in the foreground until interrupted (or the process is killed). With
    `state_file` its objects survive a restart (the demo); without, it starts empty (tests)."""
    global _state_file
    app = build_app()
    dict.clear(store)
    _state_file = state_file
    store.try_load_from_disk()
    if webhook_url:
        register_webhook("ledgerline", webhook_url, webhook_secret or "", None)

    async def _main():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        if ready:
            ready()
        while True:
            await asyncio.sleep(3600)

    asyncio.run(_main())


__all__ = ["build_app", "serve", "DECLINES"]
