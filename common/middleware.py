from django.http import HttpResponseBadRequest, JsonResponse

from common.errors import error_body
from common.parsers import NUL, NUL_MESSAGE


class RejectNulMiddleware:
    """A NUL character in the path or query string would reach PostgreSQL (which refuses it) as a
    lookup or filter value: answer 400 naming the parameter instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bad = ["path"] if NUL in request.path else []
        bad += [key for key, values in request.GET.lists() if NUL in key or any(NUL in v for v in values)]
        if not bad:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse(error_body("invalid", NUL_MESSAGE, {name: [NUL_MESSAGE] for name in bad}), status=400)
        return HttpResponseBadRequest(NUL_MESSAGE)
