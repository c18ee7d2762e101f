"""mizan-hub's Django app (distribution ``django-mizan-hub``).

The public API is importable from here -- ``mizan_hub.invalidate``,
``mizan_hub.publish``, ``mizan_hub.rpc`` ... -- but loaded on first use:
:mod:`mizan_hub.protocol` has no Django import and must stay usable (and
testable) without settings, and importing this package must not import the
app's Django modules before the app registry is ready.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

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
}

__all__ = ["__version__", *_EXPORTS]


_SUBMODULES = {"conf", "stats", "protocol", "publishing", "transports", "receivers",
               "sessions", "tokens", "handlers", "registry", "worker", "izana_compat",
               "outbox"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
