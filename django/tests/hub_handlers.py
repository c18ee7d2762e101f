"""Handlers the worker tests dispatch to (WORKER["HANDLER_MODULES"])."""

import os
import time
from pathlib import Path

import mizan_hub

seen_messages = []


@mizan_hub.rpc("test.add")
def add(request, a, b=0):
    return {"sum": a + b, "sub": request.identity and request.identity["sub"]}


@mizan_hub.rpc("test.whoami")
def whoami(request):
    return {"user": str(request.user), "authenticated": request.user.is_authenticated}


@mizan_hub.rpc("test.crash")
def crash(request):
    raise RuntimeError("boom")


@mizan_hub.rpc("test.forbidden")
def forbidden(request):
    raise mizan_hub.RpcError("FORBIDDEN", "not yours")


@mizan_hub.rpc("test.slow")
def slow(request, marker):
    """Writes ``marker`` when it starts, then sleeps MIZAN_HUB_TEST_HANG
    seconds (the worker is killed or stopped meanwhile)."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("MIZAN_HUB_TEST_HANG", "0")))
    return {"done": True}


@mizan_hub.channel_handler("chat")
def chat(request, message):
    seen_messages.append((message.channel, message.params, message.data, request.identity))
    if message.data == "crash":
        raise ValueError("bad message")
    mizan_hub.publish("chat", message.params, {"echo": message.data}, type="Echo")


@mizan_hub.context_handler("todos")
def todos(request, params):
    return {"items": [], "params": params}


@mizan_hub.subscription_guard("context", "billing")
def billing_guard(request, params):
    return request.user.is_authenticated and params.get("org") == "7"


# ---- async handlers, real HttpRequests, view decorators (issue 15) ----

import asyncio  # noqa: E402
import threading  # noqa: E402

from django.contrib.auth.decorators import login_required, permission_required  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402

async_messages = []


@mizan_hub.rpc("test.async_add")
async def async_add(request, a, b=0):
    await asyncio.sleep(0)
    return {"sum": a + b}


@mizan_hub.rpc("test.async_user")
async def async_user(request):
    from asgiref.sync import sync_to_async
    user = await sync_to_async(lambda: request.user)()
    return {"authenticated": user.is_authenticated}


@mizan_hub.channel_handler("test_async_chat")
async def async_chat(request, message):
    await asyncio.sleep(0)
    async_messages.append(message.data)


@mizan_hub.rpc("test.request")
def request_info(request):
    return {"is_http_request": isinstance(request, HttpRequest), "method": request.method,
            "addr": request.META["REMOTE_ADDR"], "path": request.path,
            "session_is_a_session": hasattr(request.session, "get")}


@mizan_hub.rpc("test.needs_perm")
@permission_required("auth.view_user", raise_exception=True)
def needs_perm(request):
    return {"ok": True}


@mizan_hub.rpc("test.needs_login")
@login_required
def needs_login(request):
    return JsonResponse({"user": request.user.username})


barrier_hits = []
_barrier = threading.Barrier(3, timeout=5)


@mizan_hub.rpc("test.together")
def together(request, i):
    """Returns only when three calls run at once (concurrency)."""
    _barrier.wait()
    barrier_hits.append(i)
    return {"i": i}
