"""Views for tests/test_middleware_modes.py: sync and async, reads and writes."""

from django.http import JsonResponse
from django.urls import path


def rows(request):
    # A GET list: a body that names "invalidate" must still not be read.
    return JsonResponse({"rows": list(range(50)), "invalidate": ["todos"]})


def rows_with_header(request):
    response = JsonResponse({"rows": [1, 2]})
    response["X-Mizan-Invalidate"] = "todos"
    return response


def big_result(request):
    return JsonResponse({"result": [{"id": i, "title": "x" * 20} for i in range(200)]})


def mutation(request):
    return JsonResponse({"result": 1, "invalidate": ["todos", {"context": "todo", "params": {"id": 5}}]})


async def async_mutation(request):
    return JsonResponse({"result": 1, "invalidate": ["todos"]})


urlpatterns = [
    path("rows/", rows),
    path("rows-header/", rows_with_header),
    path("big/", big_result),
    path("mutation/", mutation),
    path("async-mutation/", async_mutation),
]
