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
