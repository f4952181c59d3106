"""Usage intelligence API (API.md "Usage intelligence"): anomalies, usage alerts, simulations.
Thin: parse, call a service or selector, shape."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors_intel
from analytics.alerts import usage_alert_create, usage_alerts_for_subscription
from analytics.anomalies import anomaly_confirm, anomaly_dismiss
from analytics.api import CSVRenderer, parse_date
from analytics.simulation import simulation_run
from common.errors import ApplicationError
from common.pagination import PagePagination
from subscriptions.selectors import subscription_get


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AnomalyListView(APIView):
    required_scopes = {"GET": "billing:read"}

    @extend_schema(parameters=[OpenApiParameter("customer", str), OpenApiParameter("status", str),
                               OpenApiParameter("subscription", str), OpenApiParameter("kind", str)],
                   responses={200: OpenApiTypes.OBJECT}, operation_id="anomalies_list")
    def get(self, request):
        p = request.query_params
        qs = selectors_intel.anomalies_list(customer=p.get("customer"), status=p.get("status"),
                                            subscription=p.get("subscription"), kind=p.get("kind"))
        paginator = PagePagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([selectors_intel.anomaly_as_dict(a) for a in page])


class AnomalyDetailView(APIView):
    required_scopes = {"GET": "billing:read"}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk):
        return Response(selectors_intel.anomaly_as_dict(selectors_intel.anomaly_get(anomaly_id=pk)))


class _AnomalyActionView(APIView):
    required_scopes = {"POST": "billing:write"}
    service = None

    @extend_schema(request=NoteSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        anomaly = selectors_intel.anomaly_get(anomaly_id=pk)
        serializer = NoteSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        type(self).service(anomaly=anomaly, actor=request.auth, note=serializer.validated_data.get("note", ""))
        return Response(selectors_intel.anomaly_as_dict(selectors_intel.anomaly_get(anomaly_id=pk)),
                        status=status.HTTP_200_OK)


class AnomalyDismissView(_AnomalyActionView):
    service = anomaly_dismiss


class AnomalyConfirmView(_AnomalyActionView):
    service = anomaly_confirm


class UsageAlertCreateSerializer(serializers.Serializer):
    billable_metric = serializers.CharField(max_length=120)
    threshold_units = serializers.DecimalField(max_digits=38, decimal_places=12, required=False, allow_null=True)
    threshold_amount = serializers.DecimalField(max_digits=20, decimal_places=4, required=False, allow_null=True)


class SubscriptionAlertsView(APIView):
    required_scopes = {"GET": "billing:read", "POST": "billing:write"}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, external_id):
        rows = usage_alerts_for_subscription(subscription=subscription_get(external_id=external_id))
        return Response({"results": rows, "next": None})

    @extend_schema(request=UsageAlertCreateSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, external_id):
        subscription = subscription_get(external_id=external_id)
        serializer = UsageAlertCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        alert = usage_alert_create(subscription=subscription, billable_metric_code=data["billable_metric"],
                                   threshold_units=data.get("threshold_units"),
                                   threshold_amount=data.get("threshold_amount"), actor=request.auth)
        row = next(r for r in usage_alerts_for_subscription(subscription=subscription) if r["id"] == alert.pk)
        return Response(row, status=status.HTTP_201_CREATED)


class SimulationView(APIView):
    """POST /api/v1/simulations/ — re-rate billed periods with a candidate plan; nothing is billed.
    `?format=csv` answers the rows as CSV."""

    required_scopes = {"POST": "billing:read"}

    def get_renderers(self):
        return [renderers.JSONRenderer(), CSVRenderer()]

    @extend_schema(request=OpenApiTypes.OBJECT, parameters=[OpenApiParameter("format", str, enum=["json", "csv"])],
                   responses={200: OpenApiTypes.OBJECT})
    def post(self, request, format=None):
        data = request.data if isinstance(request.data, dict) else {}
        for name in ("from", "to"):
            if not data.get(name):
                raise ApplicationError(f"'{name}' is required (YYYY-MM-DD).", fields={name: ["required"]})
        start = parse_date(data, "from", None)
        end = parse_date(data, "to", None)
        subscriptions = data.get("subscriptions")
        if subscriptions is not None and (not isinstance(subscriptions, list)
                                          or not all(isinstance(s, str) for s in subscriptions)):
            raise ApplicationError("'subscriptions' must be a list of external ids.",
                                   fields={"subscriptions": ["a list of strings"]})
        current_plan = data.get("current_plan")
        if current_plan is not None and not isinstance(current_plan, str):
            raise ApplicationError("'current_plan' must be a plan code.", fields={"current_plan": ["a plan code"]})
        plan = data.get("plan")
        if plan is not None and not isinstance(plan, (str, dict)):
            raise ApplicationError("'plan' must be a plan code or an inline plan.", fields={"plan": ["code or object"]})
        body = simulation_run(plan=plan, subscriptions=subscriptions, current_plan=current_plan, start=start, end=end)
        if request.accepted_renderer.format == "csv":
            response = Response({"csv": body["rows"]})
            response["Content-Disposition"] = 'attachment; filename="simulation.csv"'
            return response
        return Response(body)
