"""Context endpoints with versions (mizan_hub.versions) for test_versions.py.

``between`` is called after the version read and before the data read, so a
test can publish exactly there."""

from django.http import JsonResponse
from django.urls import path

from mizan_hub.versions import context_versions, izana_context_fetch_view
from tests.testapp.models import Todo

between = []


def _read_todos():
    for hook in between:
        hook()
    return [t.title for t in Todo.objects.order_by("id")]


@context_versions("todos")
def todos(request):
    return JsonResponse({"todos": _read_todos()})


@context_versions("todos", lambda request, name: [name])
def by_name(request, name):
    return JsonResponse({"todos": _read_todos(), "name": name})


@context_versions("todos")
async def todos_async(request):
    from asgiref.sync import sync_to_async
    return JsonResponse({"todos": await sync_to_async(_read_todos)()})


@context_versions("todos")
def missing(request):
    return JsonResponse({"error": "no"}, status=404)


urlpatterns = [
    path("todos/", todos),
    path("ctx/<str:name>/", by_name),
    path("todos-async/", todos_async),
    path("missing/", missing),
    path("api/izana/ctx/<str:context_name>/", izana_context_fetch_view),
]
