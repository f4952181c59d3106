import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from common.admin_forms import run_per_row
from common.admin_mixins import MoneyAdminMixin, NoDeleteAdminMixin, ReadOnlyInlineMixin
from invoicing import admin_coupons  # noqa: F401 — registers the coupon redemption admin
from invoicing.emails import invoice_email_send
from invoicing.models import BillingRun, EmailStatus, Invoice, InvoiceEmail, InvoiceLine, InvoiceStatus, Payment
from invoicing.pdf import invoice_pdf_bytes, invoice_pdf_filename
from invoicing.services import invoice_approve, invoice_finalize, invoice_void


class InvoiceLineInline(MoneyAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = InvoiceLine
    money_fields = ("amount",)
    fields = ("position", "kind", "description", "billable_metric", "quantity", "unit_amount", "amount",
              "period_start", "period_end", "tiers")
    readonly_fields = fields


class PaymentInline(MoneyAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = Payment
    money_fields = ("amount",)
    fields = ("amount", "currency", "paid_on", "reference", "method", "recorded_by", "created_at")
    readonly_fields = fields


class InvoiceEmailInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = InvoiceEmail
    fk_name = "invoice"
    verbose_name = "e-mail delivery"
    verbose_name_plural = "e-mail deliveries"
    fields = ("created_at", "to", "subject", "status", "error", "requested_by", "sent_at")
    readonly_fields = fields


class DocumentPdfAdminMixin:
    """A document's PDF through an authenticated admin view (`/media/` is not served): the
    `pdf_download` button on the change page, for anyone who may view the record."""

    pdf_url_name: str

    def pdf_document(self, obj) -> tuple[str, bytes]:
        raise NotImplementedError

    def pdf_label(self, obj) -> str:
        return "Download PDF"

    def get_urls(self):
        return [path("<path:object_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name=self.pdf_url_name),
                *super().get_urls()]

    def pdf_view(self, request, object_id):
        try:
            obj = get_object_or_404(self.model, pk=uuid.UUID(str(object_id)))
        except ValueError as exc:
            raise Http404("No such document.") from exc
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        filename, content = self.pdf_document(obj)
        response = HttpResponse(content, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @admin.display(description="PDF")
    def pdf_download(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return format_html('<a class="button" href="{}">{}</a>', reverse(f"admin:{self.pdf_url_name}", args=[obj.pk]),
                           self.pdf_label(obj))


class NeedsReviewFilter(admin.SimpleListFilter):
    title = "review queue"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return (("waiting", "Waiting for review"), ("approved", "Approved after review"))

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return queryset.filter(status=InvoiceStatus.DRAFT, needs_review=True)
        if self.value() == "approved":
            return queryset.filter(approved_at__isnull=False)
        return queryset


@admin.register(Invoice)
class InvoiceAdmin(MoneyAdminMixin, DocumentPdfAdminMixin, NoDeleteAdminMixin, SimpleHistoryAdmin):
    money_fields = ("subtotal", "discount", "tax", "total", "amount_paid", "amount_due", "credit_balance_applied",
                    "prepaid_applied")
    list_display = ("__str__", "status", "customer", "subscription", "billing_date", "currency", "total",
                    "amount_due", "needs_review")
    list_filter = (NeedsReviewFilter, "status", "reason", "currency", "needs_review")
    search_fields = ("number", "customer__external_id", "customer__name", "subscription__external_id")
    list_select_related = ("customer", "subscription")
    date_hierarchy = "billing_date"
    inlines = [InvoiceLineInline, PaymentInline, InvoiceEmailInline]
    actions = ["finalize_selected", "approve_selected", "void_selected", "resend_email_selected"]
    # The stored file is not listed (its /media/ URL is not served): `pdf_download` goes through `pdf_view`.
    exclude = ("pdf",)
    readonly_fields = ["pdf_download"] + [f.name for f in Invoice._meta.fields if f.name != "pdf"]

    pdf_url_name = "invoicing_invoice_pdf"

    def pdf_document(self, obj):
        return invoice_pdf_filename(obj), invoice_pdf_bytes(invoice=obj)

    def pdf_label(self, obj):
        return "Preview draft PDF" if obj.status == InvoiceStatus.DRAFT else "Download PDF"

    def has_add_permission(self, request):
        return False  # invoices come from billing runs and subscription changes

    def has_change_permission(self, request, obj=None):
        return False  # every field is read-only: no Save; transitions are the actions

    def _each(self, request, queryset, service, verb):
        run_per_row(self, request, queryset.order_by("pk"), lambda invoice: service(invoice=invoice, actor=request.user),
                    done=lambda invoice, _: f"{verb} {Invoice.objects.get(pk=invoice.pk)}.")

    @admin.action(description="Finalize selected drafts")
    def finalize_selected(self, request, queryset):
        self._each(request, queryset, invoice_finalize, "Finalized")

    @admin.action(description="Approve (and finalize) selected drafts waiting for review")
    def approve_selected(self, request, queryset):
        self._each(request, queryset, invoice_approve, "Approved")

    @admin.action(description="Void selected invoices")
    def void_selected(self, request, queryset):
        self._each(request, queryset, invoice_void, "Voided")

    @admin.action(description="Resend invoice e-mail")
    def resend_email_selected(self, request, queryset):
        def done(invoice, log):
            if log.status == EmailStatus.SENT:
                return f"{invoice}: sent to {log.to}."
            return f"{invoice}: not sent: {log.error}", messages.ERROR

        run_per_row(self, request, queryset.order_by("pk"),
                    lambda invoice: invoice_email_send(invoice=invoice, actor=request.user), done=done)


@admin.register(BillingRun)
class BillingRunAdmin(NoDeleteAdminMixin, admin.ModelAdmin):
    list_display = ("pk", "as_of", "status", "invoices_created", "invoices_flagged", "invoices_finalized",
                    "subscriptions_due", "subscriptions_done", "error_count", "started_at", "finished_at", "triggered_by")
    list_filter = ("status",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in BillingRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- credit notes (money read-only; issued through invoicing.credit_notes) --------------------------

from invoicing.credit_notes import credit_note_void  # noqa: E402
from invoicing.pdf import credit_note_pdf_bytes, credit_note_pdf_filename  # noqa: E402
from invoicing.models import CreditNote, CreditNoteLine  # noqa: E402


class CreditNoteLineInline(MoneyAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = CreditNoteLine
    money_fields = ("amount",)
    fields = ("invoice_line", "description", "amount")
    readonly_fields = fields


@admin.register(CreditNote)
class CreditNoteAdmin(MoneyAdminMixin, DocumentPdfAdminMixin, NoDeleteAdminMixin, SimpleHistoryAdmin):
    money_fields = ("subtotal", "tax", "total")
    list_display = ("number", "status", "outcome", "invoice", "customer", "issue_date", "currency", "subtotal", "tax",
                    "total")
    list_filter = ("status", "outcome", "currency")
    search_fields = ("number", "invoice__number", "customer__external_id", "customer__name")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "issue_date"
    inlines = [CreditNoteLineInline]
    actions = ["void_selected"]
    exclude = ("pdf",)  # its /media/ URL is not served: `pdf_download` goes through `pdf_view`
    readonly_fields = ["pdf_download"] + [f.name for f in CreditNote._meta.fields if f.name != "pdf"]
    pdf_url_name = "invoicing_creditnote_pdf"

    def pdf_document(self, obj):
        return credit_note_pdf_filename(obj), credit_note_pdf_bytes(credit_note=obj)

    def has_add_permission(self, request):
        return False  # issued through the API (POST /api/v1/invoices/{id}/credit_notes/) and the service

    def has_change_permission(self, request, obj=None):
        return False  # every field is read-only: no Save; voiding is the action

    @admin.action(description="Void selected credit notes")
    def void_selected(self, request, queryset):
        run_per_row(self, request, queryset.order_by("number"),
                    lambda note: credit_note_void(credit_note=note, actor=request.user, reason="voided in the admin"),
                    done=lambda note, _: f"Voided {note.number}.", label=lambda note: note.number)
