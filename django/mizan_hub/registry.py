"""The authorization registry the hub loads (SPEC section 12).

Built from ``MIZAN_HUB["CONTEXTS"]`` and ``["CHANNELS"]`` and, when
django-izana is installed, from its ``@client`` contexts and its channels
(:mod:`mizan_hub.izana_compat`); a context or channel named in both takes
izana's values overridden key by key by the settings. The file extends
Mizan's Edge manifest (``endpoints``, ``views``, ``params``) with ``guard``,
``param_rules`` and ``channels``, so one generated file serves both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from typing import Any

from . import conf, izana_compat

logger = logging.getLogger("mizan_hub.registry")

__all__ = ["build_registry", "registry_json", "GUARDS"]

GUARDS = ("public", "auth", "staff", "superuser", "token")
CONTEXT_KEYS = ("endpoints", "views", "params", "guard", "param_rules")
CHANNEL_KEYS = ("params", "guard", "param_rules", "history", "presence", "join_leave")


def _context(spec: dict) -> dict:
    out = {k: spec[k] for k in CONTEXT_KEYS if k in spec}
    out["params"] = sorted(out.get("params") or [])
    out.setdefault("guard", "auth")
    if not out.get("param_rules"):
        out.pop("param_rules", None)
    return out


def _channel(spec: dict) -> dict:
    out = _context({k: v for k, v in spec.items()
                    if k not in ("history", "presence", "join_leave")})
    out.pop("endpoints", None)
    out.pop("views", None)
    history = spec.get("history")
    if isinstance(history, dict):
        history = history.get("size", 0)
    if history:
        out["history"] = {"size": int(history)}
    if spec.get("presence"):
        out["presence"] = True
        if spec.get("join_leave") is False:  # members kept, no join/leave frames
            out["join_leave"] = False
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


def publish_registry(text: str) -> str:
    """Stores ``text`` at ``{prefix}registry`` and announces it with a
    ``registry`` envelope; returns its version (the first 16 hex digits of
    the sha256 of its bytes: what each hub reports in /readyz)."""
    from mizan_hub import protocol
    from mizan_hub.connection import events_channel, get_redis, key

    data = text.encode("utf-8")
    version = hashlib.sha256(data).hexdigest()[:16]
    envelope = protocol.encode_envelope({"kind": "registry", "version": version})
    pipe = get_redis().pipeline(transaction=True)
    pipe.set(key("registry"), data)
    pipe.publish(events_channel(), envelope.encode("utf-8"))
    pipe.execute()
    return version


def publish_on_migrate(sender: Any = None, verbosity: int = 1, stdout: Any = None, **kwargs: Any) -> None:
    """``post_migrate`` receiver (connected once, for this app): with
    ``MIZAN_HUB["PUBLISH_REGISTRY_ON_MIGRATE"]``, every ``manage.py migrate``
    publishes the registry as ``mizan_hub_registry --publish`` does, so a
    deploy that migrates updates every hub started with
    ``--registry-from-redis``. Not in test mode (Redis is left alone). A
    Redis that cannot be reached is reported and leaves the migration done;
    with ``STRICT`` it raises ``PublishError``, failing the command."""
    import redis

    from . import testing
    from .outbox import PublishError

    if not conf.get("PUBLISH_REGISTRY_ON_MIGRATE") or testing.active():
        return
    out = stdout or sys.stdout
    try:
        version = publish_registry(registry_json())
    except (redis.RedisError, OSError) as exc:
        logger.warning("mizan-hub: the registry was not published after migrate: %s", exc)
        message = (f"mizan-hub: the registry was not published ({exc}); run "
                   "`manage.py mizan_hub_registry --publish` once Redis is back")
        if conf.get("STRICT"):
            raise PublishError(message) from exc
        sys.stderr.write(message + "\n")
        return
    if verbosity >= 1:
        out.write(f"mizan-hub: registry version {version} published to Redis\n")
