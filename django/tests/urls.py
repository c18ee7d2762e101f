from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import include, path

import mizan_hub


def json_mutation(request):
    return JsonResponse({"result": 1, "invalidate": [
        "todos", {"context": "todo", "params": {"id": 5}}]})


def header_mutation(request):
    response = HttpResponseRedirect("/profile/5/")
    response["X-Mizan-Invalidate"] = "user;user_id=5, notifications"
    return response


def izana_header(request):
    response = HttpResponse("ok")
    response["X-Izana-Invalidate"] = "feed;"
    return response


def bad_header(request):
    response = HttpResponse("ok")
    response["X-Mizan-Invalidate"] = "a b"
    return response


def failed_mutation(request):
    return JsonResponse({"error": True, "invalidate": ["todos"]}, status=400)


def already_published(request):
    mizan_hub.invalidate("todos", ("todo", {"id": 1}))
    return JsonResponse({"result": 1, "invalidate": ["todos", {"context": "todo", "params": {"id": 1}},
                                                     "other"]})


def change_password(request):
    from django.contrib.auth import update_session_auth_hash
    request.user.set_password("new-password")
    request.user.save()
    update_session_auth_hash(request, request.user)
    return HttpResponse("changed")


def touch_session(request):
    request.session["seen"] = request.session.get("seen", 0) + 1
    return HttpResponse("touched")


def plain(request):
    return JsonResponse({"result": 1})


urlpatterns = [
    path("json/", json_mutation),
    path("header/", header_mutation),
    path("izana-header/", izana_header),
    path("bad-header/", bad_header),
    path("failed/", failed_mutation),
    path("already/", already_published),
    path("plain/", plain),
    path("change-password/", change_password),
    path("touch-session/", touch_session),
    path("hub/", include("mizan_hub.urls")),
]
