"""Dunning in the admin: the policy editor (finance admins edit, viewers only read), cases by
status with their next action and amount, a case timeline, and per-case actions that call the
services ("retry now", "attach a new payment method and retry at once")."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from common.admin_tables import DayListField, days_text, dunning_schedule_table, money_display
from common.admin_site import user_may_change
from common.errors import ApplicationError
from dunning.models import DunningCase, DunningPolicy, DunningStep
from dunning.selectors import case_next_action, case_timeline
from dunning.services import dunning_retry_now


class DunningPolicyForm(forms.ModelForm):
    retry_days = DayListField(help_text="Days after the first failure, e.g. 1, 3, 6, 10")
    email_days = DayListField(help_text="Days after the first failure, 0 = at once, e.g. 0, 3, 10")

    class Meta:
        model = DunningPolicy
        fields = "__all__"


@admin.register(DunningPolicy)
class DunningPolicyAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    form = DunningPolicyForm
    list_display = ("name", "is_default", "currency", "segment", "active", "retry_day_list", "max_retries",
                    "email_day_list", "escalate_day", "final_day", "final_action", "network_cap_attempts")
    list_filter = ("active", "is_default", "currency", "final_action")
    search_fields = ("name", "segment")
    readonly_fields = ("schedule",)

    @admin.display(description="retry days")
    def retry_day_list(self, policy):
        return days_text(policy.retry_days)

    @admin.display(description="e-mail days")
    def email_day_list(self, policy):
        return days_text(policy.email_days)

    @admin.display(description="schedule (days after the first failure)")
    def schedule(self, policy):
        return dunning_schedule_table(policy) if policy.pk else "—"


class DunningStepInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = DunningStep
    fields = ("kind", "sequence", "scheduled_at", "status", "executed_at", "outcome", "decline_code", "rule", "attempt")
    readonly_fields = fields
    ordering = ("scheduled_at", "pk")


class AttachMethodForm(forms.Form):
    stripe_payment_method = forms.CharField(max_length=255, help_text="A Stripe PaymentMethod id (pm_...)")


@admin.register(DunningCase)
class DunningCaseAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    list_display = ("id", "status", "invoice", "customer", "amount_due", "currency", "decline_code", "next_action",
                    "first_failed_at", "policy")
    list_filter = ("status", "decline_category", "policy", "currency")
    search_fields = ("invoice__number", "customer__external_id", "customer__name", "decline_code")
    list_select_related = ("invoice", "customer", "policy")
    date_hierarchy = "first_failed_at"
    readonly_fields = [f.name for f in DunningCase._meta.fields] + ["timeline", "attach_link"]
    inlines = [DunningStepInline]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False  # cases open on failed charges

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="amount due")
    def amount_due(self, case):
        return money_display(case.invoice.amount_due, case.invoice.currency)

    @admin.display(description="next action")
    def next_action(self, case):
        action = case_next_action(case)
        return f"{action['kind']} at {action['at']:%Y-%m-%d %H:%M} UTC" if action else "—"

    @admin.display(description="timeline")
    def timeline(self, case):
        rows = case_timeline(case)
        return format_html(
            '<table><thead><tr><th>at (UTC)</th><th>what</th><th>status / outcome</th><th>rule</th>'
            '<th>decline code</th></tr></thead><tbody>{}</tbody></table>',
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                             ((r["at"].strftime("%Y-%m-%d %H:%M"), r["kind"],
                               " / ".join(x for x in (r["status"], r["outcome"]) if x), r["rule"],
                               r["decline_code"] or "") for r in rows)))

    @admin.display(description="new payment method")
    def attach_link(self, case):
        if case.status not in ("open", "action_required"):
            return "—"
        return format_html('<a href="{}">Attach a new payment method and retry at once</a>',
                           reverse("admin:dunning_dunningcase_attach", args=[case.pk]))

    def get_urls(self):
        return [path("<int:case_id>/attach/", self.admin_site.admin_view(self.attach_view),
                     name="dunning_dunningcase_attach"), *super().get_urls()]

    def _can_act(self, request) -> bool:
        # The back office's one write rule (common.admin_site) plus the right to charge the customer.
        return user_may_change(request.user, DunningCase) and request.user.has_perm("payments.add_payment")

    def attach_view(self, request, case_id):
        from payments.services import payment_method_attach

        case = get_object_or_404(DunningCase.objects.select_related("customer", "invoice"), pk=case_id)
        if not self._can_act(request):
            raise PermissionDenied
        form = AttachMethodForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                payment_method_attach(customer=case.customer, stripe_payment_method=form.cleaned_data["stripe_payment_method"],
                                      default=True, actor=request.user)
            except ApplicationError as exc:
                form.add_error("stripe_payment_method", exc.message)
            else:
                case.refresh_from_db()
                self.message_user(request, f"Attached; case {case.pk} is now {case.status}.", messages.SUCCESS)
                return redirect(reverse("admin:dunning_dunningcase_change", args=[case.pk]))
        context = {**self.admin_site.each_context(request), "title": f"Attach a payment method for case {case.pk}",
                   "form": form, "case": case, "opts": self.model._meta}
        return TemplateResponse(request, "dunning/admin_attach.html", context)

    @admin.action(description="Retry the selected cases now (default payment method)", permissions=["view"])
    def retry_now(self, request, queryset):
        if not self._can_act(request):
            self.message_user(request, "Your role may not charge customers.", messages.ERROR)
            return
        for case in queryset.order_by("pk"):
            try:
                step = dunning_retry_now(case_id=case.pk, rule="manual_retry", actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"Case {case.pk}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"Case {case.pk}: retry {step.status} ({step.outcome})", messages.INFO)
