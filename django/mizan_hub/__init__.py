"""mizan-hub's Django app (distribution ``django-mizan-hub``).

The public API is importable from here -- ``mizan_hub.invalidate``,
``mizan_hub.publish``, ``mizan_hub.rpc`` ... -- but loaded on first use:
:mod:`mizan_hub.protocol` has no Django import and must stay usable (and
testable) without settings, and importing this package must not import the
app's Django modules before the app registry is ready.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# What type checkers and IDEs see (the lazy __getattr__ below hides the
# exports from them); nothing is imported at run time. Each line must match
# _EXPORTS: tests/test_packaging.py checks both ways, and runs mypy.
if TYPE_CHECKING:
    from .handlers import RpcError as RpcError
    from .handlers import channel_handler as channel_handler
    from .handlers import context_handler as context_handler
    from .handlers import rpc as rpc
    from .handlers import subscription_guard as subscription_guard
    from .members import apresence as apresence
    from .members import presence as presence
    from .publishing import PublishError as PublishError
    from .publishing import ainvalidate as ainvalidate
    from .publishing import apublish as apublish
    from .publishing import disconnect as disconnect
    from .publishing import invalidate as invalidate
    from .publishing import publish as publish
    from .receivers import watch as watch
    from .registry import build_registry as build_registry
    from .tokens import connection_token as connection_token
    from .tokens import subscription_token as subscription_token
    from .transports import add_invalidation_header as add_invalidation_header
    from .transports import invalidation_header as invalidation_header
    from .transports import parse_invalidation_header as parse_invalidation_header

_EXPORTS = {
    "invalidate": "publishing",
    "publish": "publishing",
    "ainvalidate": "publishing",
    "apublish": "publishing",
    "disconnect": "publishing",
    "PublishError": "publishing",
    "invalidation_header": "transports",
    "parse_invalidation_header": "transports",
    "add_invalidation_header": "transports",
    "watch": "receivers",
    "connection_token": "tokens",
    "subscription_token": "tokens",
    "rpc": "handlers",
    "channel_handler": "handlers",
    "context_handler": "handlers",
    "subscription_guard": "handlers",
    "RpcError": "handlers",
    "build_registry": "registry",
    "presence": "members",
    "apresence": "members",
}

__all__ = ["__version__", *_EXPORTS]


_SUBMODULES = {"conf", "stats", "protocol", "publishing", "transports", "receivers",
               "sessions", "tokens", "handlers", "registry", "worker", "izana_compat",
               "outbox", "testing", "members"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
