"""Admin helpers for admins that call services: the service form and the per-row action.

`ServiceForm`: a ModelForm whose save is a service call. The service runs in the form's `clean()`
(the admin wraps the whole change view in one transaction, so a later failure still rolls it back);
an ApplicationError becomes a form error (its message, plus the named fields) instead of a 500. The
model's own `_post_clean` (construct + full_clean + validate_unique) is skipped: the service
validated and saved the row, and `self.instance` is it. Bind the request with `form_for_request`
so the service's actor is the admin user.

`run_per_row`: an admin action that calls a service once per selected row; each row gets its own
message (an ApplicationError names the row and the reason; one refusal does not stop the others)."""

from __future__ import annotations

from typing import Callable, Iterable

from django import forms
from django.contrib import messages

from common.errors import ApplicationError


class ServiceForm(forms.ModelForm):
    def run_service(self, data: dict):
        """Call the service with the cleaned data; return the saved instance."""
        raise NotImplementedError

    @property
    def actor(self):
        request = getattr(self, "request", None)
        return getattr(request, "user", None)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.instance = self.run_service(data)
        except ApplicationError as exc:
            self.add_error(None, exc.message)
            for name, messages_ in (exc.fields or {}).items():
                if name in self.fields:
                    for message in messages_:
                        self.add_error(name, message)
        return data

    def _post_clean(self):
        pass

    def save(self, commit=True):
        self.save_m2m = lambda: None
        return self.instance


def form_for_request(form_class, request):
    """Bind the request to a ServiceForm class so `actor` is the admin user."""
    return type(form_class.__name__, (form_class,), {"request": request})


def run_per_row(modeladmin, request, rows: Iterable, call: Callable, *, done: Callable,
                label: Callable = str) -> None:
    """`call(row)` for each row. A refusal (ApplicationError) is reported as `label(row): reason`
    (error); otherwise `done(row, result)` gives the message, or `(message, level)` when the outcome
    is not a plain success."""
    for row in rows:
        try:
            result = call(row)
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{label(row)}: {exc.message}", messages.ERROR)
            continue
        outcome = done(row, result)
        message, level = outcome if isinstance(outcome, tuple) else (outcome, messages.SUCCESS)
        modeladmin.message_user(request, message, level)
