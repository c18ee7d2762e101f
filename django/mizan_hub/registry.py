"""The authorization registry the hub loads (SPEC section 12).

Built from ``MIZAN_HUB["CONTEXTS"]`` and ``["CHANNELS"]`` and, when
django-izana is installed, from its ``@client`` contexts and its channels
(:mod:`mizan_hub.izana_compat`); a context or channel named in both takes
izana's values overridden key by key by the settings. The file extends
Mizan's Edge manifest (``endpoints``, ``views``, ``params``) with ``guard``,
``param_rules`` and ``channels``, so one generated file serves both.
"""

from __future__ import annotations

import json
from typing import Any

from . import conf, izana_compat

__all__ = ["build_registry", "registry_json", "GUARDS"]

GUARDS = ("public", "auth", "staff", "superuser", "token")
CONTEXT_KEYS = ("endpoints", "views", "params", "guard", "param_rules")
CHANNEL_KEYS = ("params", "guard", "param_rules", "history")


def _context(spec: dict) -> dict:
    out = {k: spec[k] for k in CONTEXT_KEYS if k in spec}
    out["params"] = sorted(out.get("params") or [])
    out.setdefault("guard", "auth")
    if not out.get("param_rules"):
        out.pop("param_rules", None)
    return out


def _channel(spec: dict) -> dict:
    out = _context({k: v for k, v in spec.items() if k != "history"})
    out.pop("endpoints", None)
    out.pop("views", None)
    history = spec.get("history")
    if isinstance(history, dict):
        history = history.get("size", 0)
    if history:
        out["history"] = {"size": int(history)}
    return out


def build_registry() -> dict[str, Any]:
    """The registry as a dict, keys sorted where order does not matter."""
    found = izana_compat.registry_part()
    contexts = {name: dict(spec) for name, spec in found["contexts"].items()}
    channels = {name: dict(spec) for name, spec in found["channels"].items()}
    for name, spec in (conf.get("CONTEXTS") or {}).items():
        contexts.setdefault(name, {}).update(spec or {})
    for name, spec in (conf.get("CHANNELS") or {}).items():
        channels.setdefault(name, {}).update(spec or {})
    return {
        "version": 1,
        "default": conf.get("DEFAULT"),
        "contexts": {name: _context(contexts[name]) for name in sorted(contexts)},
        "channels": {name: _channel(channels[name]) for name in sorted(channels)},
    }


def registry_json(indent: int | None = 2) -> str:
    return json.dumps(build_registry(), indent=indent, ensure_ascii=False,
                      sort_keys=False) + "\n"
