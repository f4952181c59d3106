import datetime as dt

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.money import format_money, is_valid_currency
from common.errors import ApplicationError
from customers.models import Customer
from customers.selectors import customer_balance_summary, customer_get
from customers.serializers import CreditGrantCreateSerializer, CustomerSerializer, CustomerUpdateSerializer
from customers.services import customer_create, customer_update, prepaid_credit_grant


class CustomerViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Customer.objects.all().order_by("external_id")
    serializer_class = CustomerSerializer
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"
    filterset_fields = ("currency", "country", "collection_method")
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_object(self):
        return customer_get(external_id=self.kwargs["external_id"])

    @extend_schema(request=CustomerSerializer, responses={201: CustomerSerializer})
    def create(self, request):
        serializer = CustomerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = customer_create(actor=request.auth, **serializer.validated_data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, external_id=None):
        return Response(CustomerSerializer(self.get_object()).data)

    @extend_schema(request=CustomerUpdateSerializer, responses={200: CustomerSerializer})
    def partial_update(self, request, external_id=None):
        customer = self.get_object()
        serializer = CustomerUpdateSerializer(customer, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        customer = customer_update(customer=customer, actor=request.auth, **serializer.validated_data)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(parameters=[OpenApiParameter("currency", str, description="default: the customer's currency")],
                   responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def balance(self, request, external_id=None):
        """Credit balance, usable prepaid credit and the balance ledger (one currency)."""
        customer = self.get_object()
        currency = request.query_params.get("currency") or customer.currency
        if not is_valid_currency(currency.upper()):
            raise ApplicationError(f"Unknown currency '{currency}'.", fields={"currency": ["not an ISO 4217 code"]})
        summary = customer_balance_summary(customer=customer, currency=currency)
        cur = summary["currency"]
        return Response({
            "customer": customer.external_id, "currency": cur,
            "credit_balance": format_money(summary["credit_balance"], cur),
            "prepaid_credit_available": format_money(summary["prepaid_credit_available"], cur),
            "ledger": [{**row, "amount": format_money(row["amount"], cur)} for row in summary["ledger"]],
        })

    @extend_schema(request=CreditGrantCreateSerializer, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def credit_grants(self, request, external_id=None):
        """Grant prepaid credit; usable through `expires_on` (inclusive, UTC)."""
        customer = self.get_object()
        serializer = CreditGrantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        expires_at = None
        if data.get("expires_on"):
            expires_at = dt.datetime.combine(data["expires_on"] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
        currency = data.get("currency") or customer.currency
        grant = prepaid_credit_grant(customer=customer, currency=currency, amount=data["amount"],
                                     reason=data["reference"] or "prepaid credit grant (API)", expires_at=expires_at,
                                     actor=request.auth)
        return Response({"id": grant.pk, "customer": customer.external_id, "currency": grant.currency,
                         "amount": format_money(grant.amount, grant.currency),
                         "remaining": format_money(grant.remaining, grant.currency),
                         "expires_on": data.get("expires_on"), "reference": grant.reason,
                         "created_at": grant.created_at}, status=status.HTTP_201_CREATED)
