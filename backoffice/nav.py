"""The shell's navigation: one registry of pages. A page whose feature is not built (its app is not
installed, or its URL name does not resolve) is simply not linked.

To add a page: write the view, name its URL in backoffice/urls.py, and append a `Page` here
(with `requires_app` when it belongs to a feature app such as "payments")."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    url_name: str
    requires_app: str | None = None

    def url(self) -> str | None:
        if self.requires_app and not apps.is_installed(self.requires_app):
            return None
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return None


PAGES: list[Page] = [
    Page("dashboard", "Dashboard", "backoffice:dashboard"),
    Page("customers", "Customers", "backoffice:customers"),
    Page("invoices", "Invoices", "backoffice:invoices"),
    Page("review", "Review queue", "backoffice:review"),
    Page("billing_runs", "Billing runs", "backoffice:billing_runs"),
    Page("payments", "Payments", "backoffice:payments", requires_app="payments"),
    Page("dunning", "Dunning", "backoffice:dunning", requires_app="dunning"),
    Page("revenue", "Revenue", "backoffice:revenue", requires_app="revrec"),
    Page("analytics", "Analytics", "backoffice:analytics", requires_app="analytics"),
    Page("anomalies", "Anomalies", "backoffice:anomalies", requires_app="analytics"),
    Page("simulation", "Simulation", "backoffice:simulation", requires_app="analytics"),
    Page("dead_letters", "Dead letters", "backoffice:dead_letters"),
]


def navigation() -> list[dict]:
    """The linked pages, in order: [{key, label, url}]."""
    items = []
    for page in PAGES:
        url = page.url()
        if url:
            items.append({"key": page.key, "label": page.label, "url": url})
    return items
