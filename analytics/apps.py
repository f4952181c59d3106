from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        # The subscription and coupon services publish their audit rows as domain events; the MRR
        # ledger follows them here (no import of analytics from the lower apps: DESIGN.md §1).
        from analytics import mrr
        from common import hooks

        hooks.subscribe("subscription.", mrr.on_subscription_events, many=True)
        hooks.subscribe("coupon.", mrr.on_coupon_events, many=True)
        # Usage anomalies hold drafts in the review queue (invoicing never imports analytics).
        from analytics.anomalies import anomaly_review_check
        from invoicing import review

        review.register_check(anomaly_review_check)
