from django.contrib import admin, messages

from common.admin_mixins import NoDeleteAdminMixin
from usage.models import DeadLetterEvent
from usage.services.dead_letters import dead_letter_replay


@admin.register(DeadLetterEvent)
class DeadLetterEventAdmin(NoDeleteAdminMixin, admin.ModelAdmin):
    """Rejected events: browse by reason, fix the cause (create the customer, subscription, metric…),
    then replay. Everything is read-only; the replay outcome is recorded on the row."""

    list_display = ("received_at", "reason", "transaction_id", "customer_external_id", "subscription_external_id",
                    "metric_code", "source", "replay_status", "replayed_at")
    list_filter = ("reason", "replay_status", "source")
    search_fields = ("transaction_id", "customer_external_id", "subscription_external_id", "metric_code")
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in DeadLetterEvent._meta.fields]
    actions = ["replay"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # read-only; the replay action is the only way to act on a dead letter

    @admin.action(description="Replay selected dead letters", permissions=["view"])
    def replay(self, request, queryset):
        for letter in queryset.order_by("pk"):
            result = dead_letter_replay(dead_letter=letter, actor=request.user)
            level = messages.SUCCESS if result.is_resolved else messages.WARNING
            detail = f" ({result.replay_reason}: {result.replay_message})" if result.replay_reason else ""
            self.message_user(request, f"Dead letter {letter.pk} {letter.transaction_id}: {result.replay_status}{detail}", level)
