"""Who may see and who may act on the back-office pages (DESIGN.md §13).

Finance viewers (group `finance-viewer`) see every page and no action; finance admins (group
`finance-admin`) and superusers act. Every page view is wrapped in `viewer_required`, every action
view in `admin_required`, which answers 403 to a signed-in viewer whatever the page showed."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.views.decorators.http import require_POST

from common.groups import FINANCE_ADMIN, FINANCE_VIEWER


def _groups(user) -> set[str]:
    cached = getattr(user, "_backoffice_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._backoffice_groups = cached
    return cached


def can_act(user) -> bool:
    return bool(user.is_authenticated and user.is_active
                and (user.is_superuser or FINANCE_ADMIN in _groups(user)))


def can_view(user) -> bool:
    return bool(user.is_authenticated and user.is_active
                and (can_act(user) or FINANCE_VIEWER in _groups(user)))


def viewer_required(view):
    """Signed-in finance staff only; anonymous users go to the sign-in page, others get 403."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("backoffice:login"))
        if not can_view(request.user):
            raise PermissionDenied("Finance staff only.")
        return view(request, *args, **kwargs)
    return wrapped


def admin_required(view):
    """A POST-only action for finance admins; a viewer (or anyone else) gets 403."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("backoffice:login"))
        if not can_act(request.user):
            raise PermissionDenied("Finance viewers cannot change anything.")
        return view(request, *args, **kwargs)
    return require_POST(wrapped)
