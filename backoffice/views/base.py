"""Shared view plumbing: the shell context and how an action reports its outcome."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone

from backoffice.nav import navigation
from backoffice.roles import can_act
from common.errors import ApplicationError

PAGE_SIZE = 50


def page(request, template: str, active: str, **context):
    context.update(nav=navigation(), active=active, can_act=can_act(request.user), today=timezone.localdate())
    return render(request, template, context)


def paginate(request, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def query_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


def form_errors(form) -> str:
    return "; ".join(f"{name if name != '__all__' else 'form'}: {' '.join(errs)}" for name, errs in form.errors.items())


def run_action(request, action: Callable[[], str], *, back: str):
    """Call a service; show its result (or the rule that refused it) and go back to the page."""
    try:
        messages.success(request, action())
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(back)
