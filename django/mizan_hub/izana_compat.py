"""Optional integration with django-izana / izana-core (Mizan as published).

``pip install ./django[izana]``. When izana is importable (and
``MIZAN_HUB["IZANA"]["ENABLED"]`` is not False) the app:

- exports izana's ``@client`` contexts (params from the functions' inputs,
  ``auth=`` as the guard) and its registered channels into the hub registry;
- answers ``rpc`` frames for ``@client(websocket=True)`` functions and ``ctx``
  frames through izana's own executor, with the reply shape of izana's
  channel consumer (``{"result", "invalidate", "merge"}``), and fans the
  invalidation out;
- hands ``message`` frames to izana ``Channel`` classes (``authorize`` then
  ``receive``) and publishes what ``receive`` returns to the channel;
- decides ``token`` guards with izana's own checks (``auth=callable`` and
  ``Channel.authorize``).

Every function here returns None/False when izana is absent or disabled, so
a plain Django project never imports it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any

from . import conf

logger = logging.getLogger("mizan_hub.izana")

#: izana's auth= values (normalized in _meta) and the registry guard each is.
AUTH_GUARDS = {None: "public", "required": "auth", "staff": "staff", "superuser": "superuser"}
_STRICTNESS = ["public", "auth", "staff", "superuser", "token"]


@dataclass
class Reply:
    """A reply frame izana built (``ok`` and ``data`` or ``error``), passed
    through unchanged so izana's runtime reads what its consumer sends."""

    frame: dict


def enabled() -> bool:
    choice = conf.get("IZANA")["ENABLED"]
    if choice is False:
        return False
    try:
        import izana_core.registry  # noqa: F401
    except ImportError:
        return False
    return True


def channels_enabled() -> bool:
    if not enabled():
        return False
    try:
        import izana.channels  # noqa: F401
    except ImportError:
        return False
    return True


def _run(hook, *args):
    """Call an izana hook that may be ``async def`` (their consumer awaits
    those; the worker is synchronous)."""
    if inspect.iscoroutinefunction(hook):
        return asyncio.run(hook(*args))
    return hook(*args)


_discovered = False


def _discover() -> None:
    """izana registers @client functions by visiting apps (izana_clients),
    as its own system check does at start-up; once per process."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    try:
        from izana.setup.discovery import izana_clients
        izana_clients()
    except Exception:  # a project without izana's app layout
        logger.debug("izana_clients() failed", exc_info=True)


# -- registry export -------------------------------------------------------

def _function_params(fn_cls: Any) -> set[str]:
    input_cls = getattr(fn_cls, "Input", None)
    fields = getattr(input_cls, "model_fields", None) or {}
    return set(fields)


def _guard_of(auth: Any) -> str:
    if callable(auth):
        return "token"  # only Django can decide: a subscription token
    return AUTH_GUARDS.get(auth, "auth")


def registry_part() -> dict:
    """``{"contexts": ..., "channels": ...}`` from izana's registries."""
    if not enabled():
        return {"contexts": {}, "channels": {}}
    from izana_core.registry import get_context_groups, get_function
    _discover()
    base = conf.get("IZANA")["BASE_URL"].rstrip("/")
    contexts: dict[str, dict] = {}
    for name, fn_names in sorted(get_context_groups().items()):
        params: set[str] = set()
        guard = "public"
        for fn_name in fn_names:
            fn_cls = get_function(fn_name)
            if fn_cls is None:
                continue
            params |= _function_params(fn_cls)
            meta = getattr(fn_cls, "_meta", {})
            candidate = _guard_of(meta.get("auth"))
            if _STRICTNESS.index(candidate) > _STRICTNESS.index(guard):
                guard = candidate
        contexts[name] = {"endpoints": [f"{base}/ctx/{name}/"], "params": sorted(params),
                          "guard": guard}
    channels: dict[str, dict] = {}
    if channels_enabled():
        from izana.channels import get_registered_channels
        for name, cls in sorted(get_registered_channels().items()):
            fields = getattr(cls.Params, "model_fields", None) or {}
            # Channel.authorize is Django code: the hub asks for a token.
            channels[name] = {"params": sorted(fields), "guard": "token"}
    return {"contexts": contexts, "channels": channels}


# -- token guards ----------------------------------------------------------

def guard_allows(request: Any, scope: str, name: str, params: dict) -> bool | None:
    """izana's own decision for a token guard, or None when izana does not
    know the context/channel."""
    if not enabled():
        return None
    if scope == "context":
        from izana.client.executor import _check_auth_requirement
        from izana_core.registry import get_context_groups, get_function
        fn_names = get_context_groups().get(name)
        if not fn_names:
            return None
        for fn_name in fn_names:
            meta = getattr(get_function(fn_name), "_meta", {})
            if _check_auth_requirement(request, meta.get("auth")) is not None:
                return False
        return True
    if not channels_enabled():
        return None
    from izana.channels import get_channel
    cls = get_channel(name)
    if cls is None:
        return None
    instance = _channel_instance(cls, name, request, params)
    return bool(_run(instance.authorize, _channel_params(cls, params)))


def _channel_instance(cls: Any, name: str, request: Any, params: dict) -> Any:
    instance = cls()
    instance.user = request.user
    instance._registered_name = name
    instance._params_dict = params
    return instance


def _channel_params(cls: Any, params: dict) -> Any:
    return cls.Params(**params) if cls.Params else None


# -- inbound frames ----------------------------------------------------------

def _error(code: Any, message: str, details: Any = None) -> Reply:
    error = {"code": getattr(code, "value", code), "message": message}
    if details:
        error["details"] = details
    return Reply({"ok": False, "error": error})


def execute_rpc(request: Any, fn: str, args: Any) -> Reply | None:
    """Run an izana ``@client(websocket=True)`` function as izana's consumer
    does, publish its invalidation, and return the reply; None when izana
    does not know ``fn``."""
    if not enabled():
        return None
    from izana_core.registry import get_function
    _discover()
    fn_cls = get_function(fn)
    if fn_cls is None:
        return None
    if not getattr(fn_cls, "_meta", {}).get("websocket"):
        return _error("FORBIDDEN", "This function is HTTP-only. Use POST /api/izana/call/ instead.")
    from django.http import HttpResponseBase
    from izana.client.executor import (FunctionError, _resolve_invalidation,
                                       _resolve_merges, execute_function)
    result = execute_function(request, fn, args)
    if isinstance(result, FunctionError):
        return _error(result.code, result.message, result.details)
    if isinstance(result, HttpResponseBase):
        return _error("BAD_REQUEST", "a view-path function cannot answer over the socket")
    data: dict = {"result": result.data}
    invalidate = _resolve_invalidation(fn_cls, args if isinstance(args, dict) else None)
    merges = _resolve_merges(fn_cls, args if isinstance(args, dict) else None, result.data)
    if invalidate:
        data["invalidate"] = invalidate
        from .publishing import invalidate as publish_invalidation
        publish_invalidation(*invalidate)
    if merges:
        data["merge"] = merges
    return Reply({"ok": True, "data": data})


def execute_ctx(request: Any, name: str, params: dict) -> Reply | None:
    """A context fetch through izana's executor; None when izana does not
    know the context."""
    if not enabled():
        return None
    from izana.client.executor import FunctionError, execute_context
    from izana_core.registry import get_context_groups
    _discover()
    if name not in get_context_groups():
        return None
    result = execute_context(request, name, params)
    if isinstance(result, FunctionError):
        return _error(result.code, result.message, result.details)
    return Reply({"ok": True, "data": result.data})


def handle_message(request: Any, channel: str, params: dict, data: Any) -> bool:
    """Hand a browser message to an izana Channel: ``authorize``, validate
    with ``ClientMessage``, ``receive``; what ``receive`` returns is
    published to the channel (izana's consumer broadcasts it to the
    group). False when izana has no such channel."""
    if not channels_enabled():
        return False
    from django.core.exceptions import PermissionDenied
    from izana.channels import get_channel
    cls = get_channel(channel)
    if cls is None:
        return False
    instance = _channel_instance(cls, channel, request, params)
    params_obj = _channel_params(cls, params)
    if not _run(instance.authorize, params_obj):
        raise PermissionDenied(f"not authorized for channel {channel!r}")
    if not cls.ClientMessage:
        raise ValueError(f"channel {channel!r} does not accept messages")
    message = cls.ClientMessage(**(data or {}))
    response = _run(instance.receive, params_obj, message)
    if response is not None:
        from .publishing import publish
        publish(channel, params, response.model_dump(mode="json"),
                type=response.__class__.__name__)
    return True
