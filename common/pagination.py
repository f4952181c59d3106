from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.pagination import CursorPagination, PageNumberPagination


class PagePagination(PageNumberPagination):
    """`?page=N&page_size=M` → {"count", "next", "previous", "results"}."""

    page_size_query_param = "page_size"
    max_page_size = 500


class CreatedCursorPagination(CursorPagination):
    """`?cursor=` over large, append-heavy tables."""

    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 1000


def whole_list_schema(name: str, item_serializer, **extra_fields):
    """The OpenAPI shape of a short, unpaginated list answered as `{"results": [...], "next": null}`."""
    return inline_serializer(name, fields={
        "results": item_serializer(many=True),
        "next": serializers.CharField(allow_null=True, help_text="Always null: the whole list is returned"),
        **extra_fields,
    })
