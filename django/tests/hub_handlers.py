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
