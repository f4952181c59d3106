"""The back-office admin site. Every ModelAdmin registered on it, ours and third-party, present and
future, is wrapped at registration (`LedgerlineAdminSite.register`):

- **Actions need the model's change permission** (`<app>.change_<model>`, a Django permission the
  finance-viewer group never has), whatever the action declares (`permissions=["view"]` included)
  and whatever `has_change_permission` answers for a read-only admin. Actions a user may not run
  are not offered, and posting one anyway answers 403 without running it.
- **History is read-only for everyone**: django-simple-history's "revert" form saves an old version
  straight over the row, bypassing services, numbering and the audit log (a finalized invoice back
  to a numberless draft). The history list and each version stay viewable; a POST is refused (403).
- **The admin login is throttled** (`common.throttle`): too many failures per username and per
  client address lock the login out for a while (429)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin

from common.throttle import login_throttled


def user_may_change(user, model) -> bool:
    """The one rule for every back-office write: the model's Django change permission."""
    opts = model._meta
    return bool(user and user.is_active and user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}"))


class GuardedModelAdmin:
    """Mixed in front of every registered ModelAdmin by `LedgerlineAdminSite.register`: actions
    need the model's change permission."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not user_may_change(request.user, self.model):
            return {}
        return actions

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)


class ReadOnlyHistoryAdmin:
    """Mixed in front of every registered SimpleHistoryAdmin: history is shown, never reverted."""

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method != "GET":
            raise PermissionDenied("History is read-only: changes go through the services.")
        return super().history_form_view(request, object_id, version_id, extra_context)


class LedgerlineAdminSite(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        guards = [GuardedModelAdmin]
        if issubclass(admin_class, SimpleHistoryAdmin):
            guards.append(ReadOnlyHistoryAdmin)
        guards = tuple(guard for guard in guards if not issubclass(admin_class, guard))
        if guards:
            admin_class = type(admin_class.__name__, (*guards, admin_class),
                               {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__})
        super().register(model_or_iterable, admin_class, **options)

    def login(self, request, extra_context=None):
        return login_throttled(super().login)(request, extra_context)


class LedgerlineAdminConfig(AdminConfig):
    """Replaces "django.contrib.admin" in INSTALLED_APPS so `admin.site` is `LedgerlineAdminSite`."""

    default_site = "common.admin_site.LedgerlineAdminSite"
