"""Issue 10 items 1, 2 and 10: a finance viewer can run no admin action (every registered action of
every registered ModelAdmin is walked), nobody can revert a record through django-simple-history,
and read-only invoices offer no Save."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from simple_history.admin import SimpleHistoryAdmin

from common.admin_site import GuardedModelAdmin, ReadOnlyHistoryAdmin
from common.models import AuditEvent
from invoicing.models import Invoice, InvoiceStatus

pytestmark = pytest.mark.django_db

MODEL_ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _user(django_user_model, username, group=None, **extra):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def _snapshot(model):
    return [tuple(sorted(row.items())) for row in model.objects.order_by("pk").values()]


def _all_actions():
    superuser_request = RequestFactory().get("/admin/")
    superuser_request.user = type("Super", (), {"is_active": True, "has_perm": lambda self, perm: True,
                                                "is_superuser": True})()
    for model, model_admin in MODEL_ADMINS:
        for name in model_admin.get_actions(superuser_request):
            yield model, name


ACTIONS = list(_all_actions())


def test_every_registered_admin_is_guarded():
    assert MODEL_ADMINS
    assert all(isinstance(model_admin, GuardedModelAdmin) for _, model_admin in MODEL_ADMINS)
    assert all(isinstance(model_admin, ReadOnlyHistoryAdmin) for _, model_admin in HISTORY_ADMINS)


def test_the_walk_covers_the_known_dangerous_actions():
    names = {(model._meta.label, name) for model, name in ACTIONS}
    assert {("invoicing.Invoice", "void_selected"), ("invoicing.Invoice", "finalize_selected"),
            ("invoicing.CreditNote", "void_selected"), ("customers.ApiKey", "revoke"),
            ("subscriptions.Subscription", "cancel"), ("usage.DeadLetterEvent", "replay")} <= names


@pytest.mark.parametrize("model,action", ACTIONS, ids=[f"{m._meta.label}.{a}" for m, a in ACTIONS])
def test_finance_viewer_cannot_run_any_admin_action(demo_data, client, django_user_model, model, action):
    viewer = _user(django_user_model, "guard-viewer", "finance-viewer")
    client.force_login(viewer)
    pks = list(model.objects.values_list("pk", flat=True)[:50])
    before, audit_before = _snapshot(model), AuditEvent.objects.count()
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = client.post(url, {"action": action, ACTION_CHECKBOX_NAME: pks, "index": 0, "apply": "1",
                                 "plan": "growth", "at": "immediately", "effective": "immediately"})
    assert response.status_code == 403
    assert _snapshot(model) == before
    assert AuditEvent.objects.count() == audit_before
    # Nor are the actions offered on the page.
    page = client.get(url)
    assert page.status_code in (200, 403)
    if page.status_code == 200:
        assert f'value="{action}"' not in page.content.decode()


def test_finance_admin_still_runs_actions(demo_data, client, django_user_model):
    finance_admin = _user(django_user_model, "guard-admin", "finance-admin")
    client.force_login(finance_admin)
    invoice = Invoice.objects.filter(status=InvoiceStatus.FINALIZED).order_by("pk").first()
    response = client.post(reverse("admin:invoicing_invoice_changelist"),
                           {"action": "void_selected", ACTION_CHECKBOX_NAME: [invoice.pk], "index": 0})
    assert response.status_code == 302
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.VOID


HISTORY_ADMINS = [(m, a) for m, a in MODEL_ADMINS if isinstance(a, SimpleHistoryAdmin)]


@pytest.mark.parametrize("model,model_admin", HISTORY_ADMINS, ids=[m._meta.label for m, _ in HISTORY_ADMINS])
def test_history_is_viewable_but_never_reverted(demo_data, client, django_user_model, model, model_admin):
    history = model.history.model
    version = history.objects.order_by("history_date", "history_id").first()
    base = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    superuser = _user(django_user_model, "guard-root", is_superuser=True)
    finance_admin = _user(django_user_model, "guard-fadmin", "finance-admin")
    viewer = _user(django_user_model, "guard-hviewer", "finance-viewer")
    before, history_count = _snapshot(model), history.objects.count()
    for user in (superuser, finance_admin, viewer):
        client.force_login(user)
        if version is None:  # no row in the demo data: the refusal comes before any lookup
            assert client.post(reverse(f"{base}_simple_history", args=[1, 1]), {}).status_code == 403
            continue
        url = reverse(f"{base}_simple_history", args=[version.instance.pk, version.history_id])
        page = client.get(url)
        assert page.status_code == 200
        assert 'name="_save"' not in page.content.decode() and "Revert" not in page.content.decode()
        form = {f.name: getattr(version, f.attname) or "" for f in model._meta.concrete_fields if not f.primary_key}
        assert client.post(url, form).status_code == 403
    assert _snapshot(model) == before
    assert history.objects.count() == history_count


def test_reverting_a_finalized_invoice_to_its_draft_version_is_refused(demo_data, client, django_user_model):
    invoice = Invoice.objects.filter(status=InvoiceStatus.FINALIZED).exclude(number="").order_by("pk").first()
    draft = invoice.history.filter(status=InvoiceStatus.DRAFT).order_by("history_date").first()
    assert draft is not None
    client.force_login(_user(django_user_model, "guard-root2", is_superuser=True))
    url = reverse("admin:invoicing_invoice_simple_history", args=[invoice.pk, draft.history_id])
    assert client.post(url, {"status": "draft", "number": ""}).status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.number


def test_finalized_invoice_change_page_offers_no_save_and_a_post_changes_nothing(demo_data, client, django_user_model):
    invoice = Invoice.objects.filter(status=InvoiceStatus.FINALIZED).order_by("pk").first()
    client.force_login(_user(django_user_model, "guard-root3", is_superuser=True))
    url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    page = client.get(url).content.decode()
    assert 'name="_save"' not in page
    assert "/media/" not in page and reverse("admin:invoicing_invoice_pdf", args=[invoice.pk]) in page
    updated_at, versions = invoice.updated_at, invoice.history.count()
    assert client.post(url, {"_save": "Save"}).status_code == 403
    invoice.refresh_from_db()
    assert invoice.updated_at == updated_at and invoice.history.count() == versions


def test_document_pdfs_download_through_the_authenticated_admin_view(demo_data, client, django_user_model):
    from invoicing.credit_notes import credit_note_create

    invoice = Invoice.objects.filter(status=InvoiceStatus.FINALIZED, total__gt=1).order_by("pk").first()
    note = credit_note_create(invoice=invoice, amount=Decimal("1.00"), reason="goodwill", actor="test")
    urls = [reverse("admin:invoicing_invoice_pdf", args=[invoice.pk]),
            reverse("admin:invoicing_creditnote_pdf", args=[note.pk])]
    for url in urls:
        assert client.get(url).status_code == 302  # to the login page
    client.force_login(_user(django_user_model, "guard-pdf-viewer", "finance-viewer"))
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
        assert response.content.startswith(b"%PDF")
    page = client.get(reverse("admin:invoicing_creditnote_change", args=[note.pk])).content.decode()
    assert urls[1] in page and "/media/" not in page


@pytest.mark.parametrize("model,model_admin", MODEL_ADMINS, ids=[m._meta.label for m, _ in MODEL_ADMINS])
def test_a_change_page_offers_save_only_when_something_is_editable(demo_data, django_user_model, model, model_admin):
    request = RequestFactory().get("/admin/")
    request.user = _user(django_user_model, "guard-save", is_superuser=True)
    obj = model_admin.get_queryset(request).order_by("pk").first()
    if obj is None or not model_admin.has_change_permission(request, obj):
        return  # view-only page: Django renders no Save
    readonly = set(model_admin.get_readonly_fields(request, obj))
    editable = [name for name in model_admin.get_form(request, obj).base_fields if name not in readonly]
    assert editable, f"{model._meta.label} offers Save with nothing to edit"
