"""The import graph follows DESIGN.md §1: apps depend downward only.

common ← customers ← catalog ← subscriptions ← usage ← invoicing ← payments ← dunning;
revrec and analytics read everything below them (and not each other); webhooks and backoffice
sit on top; demo above all. billing_site is the project package: apps may import only its
ground-floor helpers (API auth, idempotency, rate limits, OpenAPI helpers), never its urls or
settings modules directly (settings go through django.conf).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Rank of each app: an app may import apps of a lower rank, and apps of its own rank only if
# listed as peers. Apps on the same level that must not import each other share a rank.
RANK = {
    "common": 0,
    "customers": 1,
    "catalog": 2,
    "subscriptions": 3,
    "usage": 4,
    "invoicing": 5,
    "payments": 6,
    "dunning": 7,
    "revrec": 8,
    "analytics": 8,
    "webhooks": 9,
    "backoffice": 9,
    "demo": 10,
}

# The project package's modules an app may import (ground-floor helpers, no app imports of their own
# that would close a cycle).
BILLING_SITE_ALLOWED = {
    "billing_site.api_auth",
    "billing_site.idempotency",
    "billing_site.ratelimit",
    "billing_site.openapi",
    "billing_site.celery",
}


def _app_modules(app):
    base = ROOT / app
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts:
            continue
        yield rel, path


def _module_name(rel):
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_modules(rel, tree):
    package = _module_name(rel).split(".")
    if rel.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if node.module is None or node.level:
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}" if module else alias.name
            else:
                yield node.lineno, module
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"


def _check(app, rel, tree):
    found = []
    seen = set()
    rank = RANK[app]
    for lineno, module in _imported_modules(rel, tree):
        top = module.split(".")[0]
        if module == "billing_site":
            continue  # `from billing_site import x` is judged by its name, billing_site.x
        if (lineno, top) in seen:
            continue
        seen.add((lineno, top))
        where = f"{rel}:{lineno} imports {module}"
        if top == "billing_site":
            if not any(module == m or module.startswith(m + ".") for m in BILLING_SITE_ALLOWED):
                found.append(f"{where} (project package; only its ground-floor helpers)")
            continue
        if top not in RANK or top == app:
            continue
        if RANK[top] >= rank:
            found.append(f"{where} ({top} is not below {app})")
    return found


def _violations():
    found = []
    for app in RANK:
        if not (ROOT / app).is_dir():
            continue
        for rel, path in _app_modules(app):
            found += _check(app, rel, ast.parse(path.read_text(), filename=str(rel)))
    return found


def test_apps_import_only_apps_below_them():
    violations = _violations()
    assert violations == [], "upward imports:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    ("app", "source", "expected"),
    [
        ("catalog", "from invoicing.models import Invoice\n", 1),
        ("catalog", "import subscriptions.services\n", 1),
        ("revrec", "from analytics import mrr\n", 1),
        ("usage", "from billing_site.urls import urlpatterns\n", 1),
        ("catalog", "from customers import models\nfrom . import rating\n", 0),
        ("invoicing", "from billing_site.api_auth import Scope\n", 0),
        ("invoicing", "from billing_site import urls\n", 1),
    ],
)
def test_the_walker_sees_upward_imports(app, source, expected):
    # The walker itself must catch an upward import, or the test above could never fail.
    found = _check(app, Path(f"{app}/x.py"), ast.parse(source))
    assert len(found) == expected, found
