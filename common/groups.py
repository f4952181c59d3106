"""Finance staff groups. The groups are created by a migration; their permissions are synced after
every migrate so models added later join them: viewers may only view, admins may add/change/view
(deletion of financial records is not offered to anyone but superusers)."""

from django.contrib.auth.models import Group, Permission

FINANCE_APPS = ("common", "customers", "catalog", "usage", "subscriptions", "invoicing", "payments", "dunning", "revrec", "analytics",
               "webhooks")
FINANCE_ADMIN = "finance-admin"
FINANCE_VIEWER = "finance-viewer"


def sync_finance_groups(sender=None, **kwargs) -> None:
    # Runs for every app's post_migrate (cheap, idempotent): permissions of apps migrated later exist only then.
    perms = Permission.objects.filter(content_type__app_label__in=FINANCE_APPS)
    viewer, _ = Group.objects.get_or_create(name=FINANCE_VIEWER)
    admin, _ = Group.objects.get_or_create(name=FINANCE_ADMIN)
    viewer.permissions.set(perms.filter(codename__startswith="view_"))
    admin.permissions.set(perms.exclude(codename__startswith="delete_"))
