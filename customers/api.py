from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from customers.models import Customer
from customers.selectors import customer_get
from customers.serializers import CustomerSerializer, CustomerUpdateSerializer
from customers.services import customer_create, customer_update


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
