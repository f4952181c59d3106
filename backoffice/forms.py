"""Action forms. They only parse input; the services decide (and their errors are shown as such)."""

from django import forms

from invoicing.models import CreditNoteOutcome
from payments.models import MANUAL_METHODS, PaymentKind

MONEY = {"max_digits": 20, "decimal_places": 4}


class PaymentForm(forms.Form):
    amount = forms.DecimalField(required=False, min_value=0, help_text="Empty: the whole amount due", **MONEY)
    paid_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Paid on")
    reference = forms.CharField(required=False, max_length=255)
    method = forms.ChoiceField(required=False, choices=[(m, PaymentKind(m).label) for m in MANUAL_METHODS])


class RetryChargeForm(forms.Form):
    payment_method = forms.IntegerField(required=False, min_value=1, help_text="Empty: the default card")


class CreditNoteForm(forms.Form):
    amount = forms.DecimalField(min_value=0, help_text="Tax included", **MONEY)
    reason = forms.CharField(max_length=500)
    outcome = forms.ChoiceField(required=False, choices=[("", "automatic")] + list(CreditNoteOutcome.choices))


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class ResendForm(forms.Form):
    to = forms.EmailField(required=False, help_text="Empty: the invoice's billing e-mail")


class BillingRunForm(forms.Form):
    as_of = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Bill up to")


class DraftCreditForm(forms.Form):
    """A one-off prepaid credit for a draft's customer, in the draft's currency."""
    amount = forms.DecimalField(min_value=0, **MONEY)
    reason = forms.CharField(max_length=400)


class DraftRepriceForm(forms.Form):
    """A price override for one charge of a draft: either a unit price (standard charges) or the
    charge's full properties (the same shape as a plan's charge in POST /plans/)."""
    line = forms.IntegerField(min_value=1)
    unit_amount = forms.DecimalField(required=False, min_value=0, max_digits=24, decimal_places=12,
                                     help_text="Standard charges: the new price per unit")
    model = forms.ChoiceField(required=False, choices=[("", "unchanged"), ("standard", "standard"), ("package", "package"),
                                                       ("graduated", "graduated"), ("volume", "volume"),
                                                       ("percentage", "percentage")])
    properties = forms.JSONField(required=False, help_text="Other models: the charge's properties")

    def clean(self):
        data = super().clean()
        if data.get("unit_amount") is None and not data.get("properties"):
            raise forms.ValidationError("Give a unit price or the charge's properties.")
        if data.get("properties") is not None and data.get("properties") != "" and not isinstance(data["properties"], dict):
            self.add_error("properties", "An object such as {\"unit_amount\": \"0.80\"}.")
        return data
