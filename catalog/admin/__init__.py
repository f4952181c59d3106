"""Catalog admin for finance staff. Thin: every write goes through catalog.services.

- Plans list their versions with the number of subscriptions on each.
- A version is never edited: "New version from this one" opens the add form prefilled with its
  prices and charges; saving calls `plan_update` (public) or `plan_version_override_create`
  (when a customer is chosen: a private price for that customer).
- Charge properties are edited as pretty-printed JSON, validated exactly like the API, and shown
  as a readable price summary.
- "Price preview" rates a version for quantities typed in (catalog.rating via a selector).
"""

from catalog.admin import charges, coupons, metrics, plan_versions, plans, taxes  # noqa: F401 — registers the admins
