"""Admin forms whose save is a service call.

The service runs in the form's `clean()` (the admin wraps the whole change view in one
transaction, so a later failure still rolls it back); an ApplicationError becomes a form error (its message,
plus the named fields) instead of a 500. The model's own `_post_clean` (construct + full_clean +
validate_unique) is skipped: the service validated and saved the row, and `self.instance` is it."""

from __future__ import annotations

from django import forms

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
            for name, messages in (exc.fields or {}).items():
                if name in self.fields:
                    for message in messages:
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
