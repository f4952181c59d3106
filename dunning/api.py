"""Dunning API (API.md "Dunning"): thin callers of dunning.selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from dunning.selectors import dunning_case_get, dunning_cases_list
from dunning.serializers import DunningCaseSerializer


class DunningCaseViewSet(viewsets.GenericViewSet):
    serializer_class = DunningCaseSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        params = self.request.query_params
        return dunning_cases_list(status=params.get("status"), customer=params.get("customer"))

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=["open", "action_required", "recovered",
                                                                      "exhausted", "canceled"]),
                               OpenApiParameter("customer", str, description="customer external_id")])
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(DunningCaseSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(DunningCaseSerializer(dunning_case_get(case_id=pk)).data)
