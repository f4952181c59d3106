"""Finance view of subscriptions: read-only rows, a timeline (periods, plan segments, ledger,
proration items), and actions that call the lifecycle services (intermediate form page)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import Plan
from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from common.admin_tables import money_of
from common.errors import ApplicationError
from subscriptions.models import ProrationItem, Subscription, SubscriptionChange
from subscriptions.fees import advance_fee_for_period
from subscriptions.selectors import plan_segments, subscription_timeline
from subscriptions.services import subscription_cancel, subscription_change_plan

EFFECTIVE_CHOICES = [("", "default (upgrade now, downgrade at period end)"), ("immediately", "immediately"),
                     ("period_end", "at period end")]


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("code"), to_field_name="code")
    effective = forms.ChoiceField(choices=EFFECTIVE_CHOICES, required=False)
    date = forms.DateField(required=False, help_text="Effective date (customer-local); default today")


class CancelForm(forms.Form):
    at = forms.ChoiceField(choices=[("period_end", "at period end"), ("immediately", "immediately (credit unused days)")])
    date = forms.DateField(required=False, help_text="Default today (customer-local)")


class ReadOnlyInline(ReadOnlyInlineMixin, admin.TabularInline):
    """The subscription's timeline rows: shown, never edited here."""


class SubscriptionChangeInline(ReadOnlyInline):
    model = SubscriptionChange
    fk_name = "subscription"
    fields = ("kind", "effective_date", "applied_at", "superseded_at", "from_plan_version", "to_plan_version",
              "from_quantity", "to_quantity", "from_status", "to_status", "actor", "created_at")
    readonly_fields = fields
    ordering = ("effective_date", "pk")


class ProrationItemInline(ReadOnlyInline):
    model = ProrationItem
    fields = ("kind", "description", "quantity", "unit_amount", "amount", "currency", "period_start", "period_end",
              "invoiced_at", "invoice_line_id")
    readonly_fields = fields


@admin.register(Subscription)
class SubscriptionAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("external_id", "customer", "plan_version", "quantity", "status", "billing_time", "start_date",
                    "trial_end_date", "end_date", "cancel_at_period_end")
    list_filter = ("status", "billing_time", "cancel_at_period_end", "plan_version__plan")
    list_select_related = ("customer", "plan_version__plan")
    search_fields = ("external_id", "customer__external_id", "customer__name", "plan_version__plan__code")
    date_hierarchy = "start_date"
    readonly_fields = ("external_id", "customer", "plan_version", "quantity", "billing_time", "status", "start_date",
                       "trial_end_date", "end_date", "cancel_at_period_end", "canceled_at", "usage_billed_through",
                       "advance_billed_through", "created_at", "updated_at", "timeline")
    inlines = [SubscriptionChangeInline, ProrationItemInline]
    actions = ["change_plan", "cancel"]

    def has_add_permission(self, request):
        return False  # created through the API / subscription_create (validation, ledger, audit)

    def has_change_permission(self, request, obj=None):
        return False  # every field is read-only (no Save); changes are the actions, which call the services

    @admin.display(description="Timeline (periods)")
    def timeline(self, obj: Subscription):
        rows = []
        items = list(obj.proration_items.order_by("period_start", "pk"))
        for period in subscription_timeline(subscription=obj):
            segments = "; ".join(
                f"{s:%Y-%m-%d}→{e:%Y-%m-%d} {v} × {q}"
                for s, e, v, q in plan_segments(subscription=obj, start=period.start, end=period.end)
            )
            fee = advance_fee_for_period(subscription=obj, period=period)
            in_period = ", ".join(f"{i.kind} {i.amount:f}" for i in items if period.contains(i.period_start))
            rows.append((f"{period.start:%Y-%m-%d}", f"{period.last_day:%Y-%m-%d}", segments or "—",
                         f"{fee.amount:f} {fee.currency}" if fee else "—", in_period or "—"))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><tr><th>from</th><th>through</th><th>plan segments</th><th>advance fee</th>"
            "<th>proration</th></tr>{}</table><p>Invoices appear here once invoicing is wired.</p>", body)

    def _form_page(self, request, queryset, form, *, action, title, submit_label):
        context = {**self.admin_site.each_context(request), "title": title, "queryset": queryset, "form": form,
                   "action": action, "submit_label": submit_label, "opts": self.model._meta}
        return TemplateResponse(request, "admin/subscriptions/action_form.html", context)

    def _run(self, request, queryset, call):
        for sub in queryset.order_by("pk"):
            try:
                result = call(sub)
            except ApplicationError as exc:
                self.message_user(request, f"{sub.external_id}: {exc.message}", messages.ERROR)
                continue
            amounts = ", ".join(f"{i.kind} {i.amount:f}" for i in result.proration_items)
            state = "applied" if result.change.applied_at else f"scheduled for {result.change.effective_date}"
            self.message_user(request, f"{sub.external_id}: {result.change.get_kind_display()} {state}"
                                       f"{' (' + amounts + ')' if amounts else ''}.", messages.SUCCESS)

    @admin.action(description="Change plan…")
    def change_plan(self, request, queryset):
        form = ChangePlanForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            data = form.cleaned_data
            self._run(request, queryset, lambda sub: subscription_change_plan(
                subscription=sub, plan_code=data["plan"].code, effective=data["effective"] or None, on=data["date"],
                actor=request.user))
            return None
        return self._form_page(request, queryset, form, action="change_plan", title="Change plan", submit_label="Change plan")

    @admin.action(description="Cancel…")
    def cancel(self, request, queryset):
        form = CancelForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            data = form.cleaned_data
            self._run(request, queryset, lambda sub: subscription_cancel(
                subscription=sub, at=data["at"], on=data["date"], actor=request.user))
            return None
        return self._form_page(request, queryset, form, action="cancel", title="Cancel subscriptions", submit_label="Cancel")


@admin.register(ProrationItem)
class ProrationItemAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("subscription", "kind", money_of("amount", "currency"), "currency", "period_start", "period_end",
                    "invoiced_at")
    list_filter = ("kind", "currency")
    list_select_related = ("subscription",)
    search_fields = ("subscription__external_id", "description")
    date_hierarchy = "period_start"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
