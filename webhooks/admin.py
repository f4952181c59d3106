"""Webhook endpoints and their deliveries log. Changes go through the services; finance viewers see
everything but change nothing (the retry actions need the change permission)."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from common.admin_forms import run_per_row
from common.admin_mixins import NoDeleteAdminMixin, ReadOnlyInlineMixin
from common.errors import ApplicationError
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import (
    clean_events as service_clean_events,
    clean_url as service_clean_url,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_update,
)
from simple_history.admin import SimpleHistoryAdmin


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "description", "enabled")

    def clean_url(self):
        try:
            return service_clean_url(self.cleaned_data["url"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_events(self):
        try:
            return service_clean_events(self.cleaned_data["events"] or [])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(NoDeleteAdminMixin, SimpleHistoryAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "description", "enabled", "event_types", "failing_since", "disabled_reason", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    fields = ("url", "events", "description", "enabled", "secret_hint", "failing_since", "disabled_at",
              "disabled_reason", "created_at", "updated_at")
    readonly_fields = ("secret_hint", "failing_since", "disabled_at", "disabled_reason", "created_at", "updated_at")
    actions = ("enable_endpoints", "disable_endpoints")

    @admin.display(description="events")
    def event_types(self, obj):
        return ", ".join(obj.events) if obj.events else "all"

    @admin.display(description="signing secret")
    def secret_hint(self, obj):
        return f"{obj.secret[:10]}… (shown in full once, when the endpoint is created)" if obj.secret else "-"

    def save_model(self, request, obj, form, change):
        # The form validated through the same rules as the services (url and events checks).
        if change:
            webhook_endpoint_update(endpoint=obj, actor=request.user,
                                    **{name: form.cleaned_data[name] for name in form.changed_data})
        else:
            created = webhook_endpoint_create(url=obj.url, events=obj.events, description=obj.description,
                                              actor=request.user)
            obj.pk = created.pk
            self.message_user(request, format_html(
                "Signing secret (shown once, copy it now): <code>{}</code>", created.secret), messages.WARNING)

    def _set_enabled(self, request, queryset, enabled: bool):
        for endpoint in queryset:
            webhook_endpoint_update(endpoint=endpoint, enabled=enabled, actor=request.user)
            self.message_user(request, f"{endpoint.url}: {'enabled' if enabled else 'disabled'}.", messages.SUCCESS)

    @admin.action(description="Enable selected endpoints", permissions=["change"])
    def enable_endpoints(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable_endpoints(self, request, queryset):
        self._set_enabled(request, queryset, False)


class WebhookAttemptInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "manual", "status_code", "latency_ms", "response_excerpt", "error")
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "event_type", "endpoint", "status", "attempt_count", "last_status_code",
                    "next_attempt_at", "delivered_at")
    list_filter = ("status", "event__type")
    list_select_related = ("event", "endpoint")
    search_fields = ("endpoint__url", "event__type", "event__object_id")
    date_hierarchy = "created_at"
    readonly_fields = ("endpoint", "event", "webhook_id", "event_type", "payload", "status", "attempt_count",
                       "next_attempt_at", "last_attempt_at", "last_status_code", "delivered_at", "created_at")
    fields = readonly_fields
    inlines = (WebhookAttemptInline,)
    actions = ("retry_now",)

    def has_add_permission(self, request):
        return False

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="webhook-id")
    def webhook_id(self, obj):
        return obj.event.webhook_id

    @admin.display(description="data (frozen at the first attempt)")
    def payload(self, obj):
        return obj.event.data if obj.event.data is not None else "(built at the first attempt)"

    @admin.action(description="Retry selected deliveries now", permissions=["change"])
    def retry_now(self, request, queryset):
        def done(_, delivery):
            ok = delivery.status == DeliveryStatus.SUCCEEDED
            return (f"{delivery}: {'delivered' if ok else 'failed'} (HTTP {delivery.last_status_code or '-'}).",
                    messages.SUCCESS if ok else messages.ERROR)

        run_per_row(self, request, queryset.select_related("endpoint", "event"),
                    lambda delivery: webhook_delivery_retry(delivery=delivery, actor=request.user), done=done)
