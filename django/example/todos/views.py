"""The demo's views, written the way Mizan mutations are: each answers
``{"result": ..., "invalidate": ["todos"]}`` so the tab that made the change
refetches at once. Nothing here mentions the hub: the ``MODELS`` map
publishes "todos" on every save/delete after the commit, and the middleware
would publish the body's list for views without a model map (it skips what
was already published in the request)."""

import json

from django.conf import settings
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from mizan_hub.versions import context_versions

from .models import Todo


@ensure_csrf_cookie
def index(request):
    return render(request, "todos/index.html",
                  {"hub_url": settings.MIZAN_HUB.get("HUB_URL", "ws://127.0.0.1:8765/")})


@require_GET
@context_versions("todos")
def todo_list(request):
    response = JsonResponse({"todos": [t.as_json() for t in Todo.objects.all()]})
    response["Cache-Control"] = "no-store"
    return response


def _mutation(result):
    return JsonResponse({"result": result, "invalidate": ["todos"]})


@require_POST
@transaction.atomic
def add(request):
    try:
        title = str(json.loads(request.body or b"{}").get("title", "")).strip()
    except (ValueError, AttributeError):
        title = ""
    if not title:
        return JsonResponse({"error": "title is required"}, status=400)
    return _mutation(Todo.objects.create(title=title[:200]).as_json())


@require_POST
@transaction.atomic
def toggle(request, pk):
    todo = get_object_or_404(Todo.objects.select_for_update(), pk=pk)
    todo.done = not todo.done
    todo.save()
    return _mutation(todo.as_json())


@require_POST
@transaction.atomic
def delete(request, pk):
    get_object_or_404(Todo, pk=pk).delete()
    return _mutation(None)


@ensure_csrf_cookie
def board(request):
    """20 contexts on one page (board0..board19), each fetched once; with
    ``?versions=1`` each subscribes with the version its response carries."""
    return render(request, "todos/board.html", {
        "hub_url": settings.MIZAN_HUB.get("HUB_URL", "ws://127.0.0.1:8765/"),
        "size": settings.BOARD_SIZE, "versions": request.GET.get("versions") == "1"})


@require_GET
@context_versions(lambda request, n: [f"board{n}"])
def board_panel(request, n):
    if not 0 <= n < settings.BOARD_SIZE:
        raise Http404("no such panel")
    todos = Todo.objects.all()
    response = JsonResponse({"panel": n, "todos": todos.count(), "done": todos.filter(done=True).count()})
    response["Cache-Control"] = "no-store"
    return response
