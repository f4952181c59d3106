from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        # The subscription and coupon services publish their audit rows as domain events; the MRR
        # ledger follows them here (no import of analytics from the lower apps: DESIGN.md §1).
        from analytics import mrr  # noqa: PLC0415 — runs in AppConfig.ready()
        from common import hooks  # noqa: PLC0415 — runs in AppConfig.ready()

        hooks.subscribe("subscription.", mrr.on_subscription_events, many=True)
        hooks.subscribe("coupon.", mrr.on_coupon_events, many=True)
        # Usage anomalies hold drafts in the review queue (invoicing never imports analytics).
        from analytics.anomaly_review import anomaly_review_check  # noqa: PLC0415 — runs in AppConfig.ready()
        from invoicing import review  # noqa: PLC0415 — runs in AppConfig.ready()

        review.register_check(anomaly_review_check)
