"""What the inbound worker and the token views dispatch to.

Browser ``message``, ``rpc`` and ``ctx`` frames reach Django through the
``{prefix}in`` stream (SPEC section 11); the worker hands each to the
function registered for its channel, fn or context name::

    @mizan_hub.rpc("todos.add")
    def add(request, title):
        ...                      # request.user, request.identity
        return {"id": todo.pk}   # becomes {"id": ..., "ok": true, "data": ...}

    @mizan_hub.channel_handler("chat")
    def chat(request, message):  # message.channel, .params, .data
        mizan_hub.publish("chat", message.params, message.data, type="ChatMessage")

A ``token`` guard (SPEC section 12) is decided by a subscription guard::

    @mizan_hub.subscription_guard("context", "billing")
    def can_see_billing(request, params):
        return request.user.has_perm("billing.view", ...)

Modules holding these are imported by the worker: every installed app's
``hub`` module and ``MIZAN_HUB["WORKER"]["HANDLER_MODULES"]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from django.http import HttpRequest
from django.utils.module_loading import autodiscover_modules

from . import conf
from .direct import send_to_connection

__all__ = ["rpc", "channel_handler", "context_handler", "subscription_guard",
           "RpcError", "HubRequest", "Message", "autodiscover"]

_rpc: dict[str, Callable] = {}
_channels: dict[str, Callable] = {}
_contexts: dict[str, Callable] = {}
_guards: dict[tuple[str, str], Callable] = {}


class RpcError(Exception):
    """Raise in an rpc/ctx handler to answer ``{"ok": false, "error": {code,
    message}}`` with a code of the framework's (``BAD_REQUEST``,
    ``NOT_FOUND``, ``FORBIDDEN``, ``UNAUTHORIZED``, ...)."""

    def __init__(self, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _register(table: dict, name: Any, kind: str) -> Callable[[Callable], Callable]:
    def decorator(func: Callable) -> Callable:
        existing = table.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
                func.__module__, func.__qualname__):
            raise ValueError(f"{kind} {name!r} is already handled by "
                             f"{existing.__module__}.{existing.__qualname__}")
        table[name] = func
        return func
    return decorator


def rpc(name: str) -> Callable[[Callable], Callable]:
    """Register ``func(request, **args)`` (or ``*args`` for an array) as the
    rpc function ``name``. Its return value (JSON, Django's encoder) is the
    reply's ``data``."""
    return _register(_rpc, name, "rpc")


def channel_handler(name: str) -> Callable[[Callable], Callable]:
    """Register ``func(request, message)`` for browser messages on channel
    ``name``. Nothing is answered; publish to answer."""
    return _register(_channels, name, "channel")


def context_handler(name: str) -> Callable[[Callable], Callable]:
    """Register ``func(request, params)`` for ``ctx`` frames (a context fetch
    through the socket) of context ``name``; returns the context's data."""
    return _register(_contexts, name, "context")


def subscription_guard(scope: str, name: str) -> Callable[[Callable], Callable]:
    """Register ``func(request, params) -> bool`` deciding who gets a
    subscription token for a ``token``-guarded context or channel."""
    if scope not in ("context", "channel"):
        raise ValueError("scope is 'context' or 'channel'")
    return _register(_guards, (scope, name), "guard")


def get_rpc(name: str) -> Callable | None:
    return _rpc.get(name)


def get_channel_handler(name: str) -> Callable | None:
    return _channels.get(name)


def get_context_handler(name: str) -> Callable | None:
    return _contexts.get(name)


def get_guard(scope: str, name: str) -> Callable | None:
    return _guards.get((scope, name))


def registered() -> dict[str, list]:
    return {"rpc": sorted(_rpc), "channels": sorted(_channels),
            "contexts": sorted(_contexts), "guards": sorted(_guards)}


def autodiscover() -> None:
    """Import every app's ``hub`` module and the configured handler modules."""
    autodiscover_modules("hub")
    for module in conf.get("WORKER")["HANDLER_MODULES"]:
        importlib.import_module(module)


def _empty_session() -> Any:
    """A new session of the project's engine (never saved), or a dict
    without django.contrib.sessions."""
    from django.conf import settings
    try:
        from importlib import import_module
        return import_module(settings.SESSION_ENGINE).SessionStore()
    except Exception:  # sessions not installed or configured
        return {}


@dataclass
class Message:
    """A browser ``message`` frame as a channel handler sees it."""

    channel: str
    params: dict
    data: Any


class HubRequest(HttpRequest):
    """The sender of a stream entry as a real :class:`django.http.HttpRequest`
    (``POST``, ``user``, ``META`` with ``REMOTE_ADDR``, ``session``), so
    permission checks, decorators and DRF permission classes written for
    views work on rpc, ctx and channel handlers unchanged.

    ``identity`` is what the hub authenticated (``{"sub", "staff", "super"}``
    or None); ``user`` loads that user from the database on first use (the
    hub's identity is only the pk and two flags), or is anonymous.
    ``session`` is an empty, unsaved session of the project's engine: the hub
    knows a cookie session only by a hash, never its key.
    """

    def __init__(self, identity: dict | None, hub: str, conn: str, ts: float | None = None,
                 frame: dict | None = None, addr: str | None = None):
        super().__init__()
        self.identity = identity
        self.hub = hub
        self.conn = conn
        self.ts = ts
        self.frame = frame or {}
        self.method = "POST"
        target = self.frame.get("fn") or self.frame.get("context") or self.frame.get("channel")
        self.path = self.path_info = f"/mizan-hub/{self.frame.get('action', 'call')}/{target or ''}"
        self.META.update({"REQUEST_METHOD": "POST", "REMOTE_ADDR": addr or "",
                          "SERVER_NAME": "mizan-hub", "SERVER_PORT": "443",
                          "HTTP_X_MIZAN_HUB": hub, "HTTP_X_MIZAN_CONN": conn})
        self.session = _empty_session()

    def get_host(self) -> str:
        """The site's own host (the first concrete ``ALLOWED_HOSTS`` entry):
        a frame from the hub names none, and code building URLs (a
        login_required redirect) needs one."""
        from django.conf import settings
        for host in settings.ALLOWED_HOSTS:
            if host and host != "*" and not host.startswith("."):
                return host
        return "localhost"

    @property
    def user(self) -> Any:
        if "_user" not in self.__dict__:
            self.__dict__["_user"] = self._load_user()
        return self.__dict__["_user"]

    @user.setter
    def user(self, value: Any) -> None:
        self.__dict__["_user"] = value

    def _load_user(self) -> Any:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import AnonymousUser
        if not self.identity or not self.identity.get("sub"):
            return AnonymousUser()
        model = get_user_model()
        try:
            return model._default_manager.get(pk=self.identity["sub"])
        except (model.DoesNotExist, ValueError):
            return AnonymousUser()

    def send(self, frame: dict) -> None:
        """Push a frame to this connection (a ``send`` envelope to its hub)."""
        send_to_connection(self.hub, self.conn, frame)
