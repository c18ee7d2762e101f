"""The ``MIZAN_HUB`` settings dict, with its defaults filled in.

Everything the app reads from settings goes through :func:`hub_settings`, so
the defaults live in one table (:data:`DEFAULTS`) that the README mirrors and
the system checks (:mod:`mizan_hub.checks`) validate. The merged result is
cached and dropped on Django's ``setting_changed`` signal, so
``override_settings(MIZAN_HUB=...)`` in tests takes effect at once.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

#: Every key of ``MIZAN_HUB`` and its default. Nested dicts (``TOKEN``,
#: ``WORKER``, ``IZANA``) are merged key by key with the user's values.
DEFAULTS: dict[str, Any] = {
    # Where the hub's Redis is; the hub must be pointed at the same one.
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    # Client-side sharding (SPEC section 11.1): a list of Redis URLs, one
    # per shard, in the same order as the hub's --redis-shards; the data is
    # spread over them by SPEC 11.1's mapping. None: one shard, REDIS_URL.
    "REDIS_SHARDS": None,
    # Redis behind Sentinel: ["host:port", ...] of the Sentinels. The master
    # comes from them (REDIS_URL then names only the scheme, database, user
    # and password) and a failover is followed: the publisher, the outbox
    # relay and the inbound worker write to whichever server is the master
    # now. The hub's --redis-sentinels (manage.py mizan_hub_config writes it).
    "REDIS_SENTINELS": [],
    # The master's name in the Sentinels (--redis-master-name).
    "REDIS_MASTER_NAME": "mymaster",
    # The Sentinels' own password (their requirepass), if any
    # (--redis-sentinel-password).
    "REDIS_SENTINEL_PASSWORD": "",
    # Prepended to every Redis name (SPEC section 11); the hub's
    # --redis-prefix.
    "PREFIX": "mizan:",
    # False: a publish that cannot reach Redis is logged and counted, and the
    # request goes on. True: it raises mizan_hub.PublishError.
    "STRICT": False,
    # mizan_hub.testing: True records publishing in mizan_hub.testing.published
    # (at commit) instead of sending it, and leaves Redis alone; None (auto)
    # does so under Django's test runner only; False never.
    "TEST_MODE": None,
    # Seconds to wait for Redis before giving up (connect and each command):
    # short, because publishing runs inside requests.
    "REDIS_TIMEOUT": 1.0,
    # The hub's WebSocket URL, for pages and the demo (the hub's --listen).
    "HUB_URL": "ws://127.0.0.1:8765/",
    # The registry (SPEC section 12): contexts and channels by name, e.g.
    # {"user": {"params": ["user_id"], "guard": "auth",
    #           "param_rules": {"user_id": "sub"}}}
    # Channels may add "history": N (messages kept for resume, 0 = none),
    # "ttl": seconds (overrides CHANNEL_TTL for that channel) and
    # "presence": True (the hubs keep who subscribes; mizan_hub.presence()),
    # with "join_leave": False for a large room (members kept and queried,
    # but no join/leave frames: N members joining would send ~N^2/2).
    "CONTEXTS": {},
    "CHANNELS": {},
    # Unknown contexts/channels: "deny" (not_found) or "allow" (as "auth").
    "DEFAULT": "deny",
    # Origins the hub accepts cookie-authenticated upgrades from (its
    # allowed_origins): None derives them from CSRF_TRUSTED_ORIGINS and
    # ALLOWED_HOSTS (see allowed_origins()); a list replaces that.
    "ALLOWED_ORIGINS": None,
    # The hub's own settings for `manage.py mizan_hub_config` (listen,
    # workers, tls_cert, log_level, ...: the names of `mizan-hub --help`,
    # see HUB_SETTINGS); the ones Django's settings decide (DERIVED) are
    # written from those and cannot be set here.
    "HUB": {},
    # Seconds a channel's seq/epoch hash and history stream live after
    # their last message (PEXPIRE); 0 keeps them forever.
    "CHANNEL_TTL": 7 * 24 * 3600,
    # Models whose saves and deletes invalidate contexts:
    # {"todos.Todo": ["todos", ("todo", {"id": "pk"})]}
    "MODELS": {},
    # Keep the session registry (SPEC section 12) on login and logout.
    "SESSIONS": True,
    # Publish the registry to Redis (as `manage.py mizan_hub_registry
    # --publish`) at the end of every `manage.py migrate`.
    "PUBLISH_REGISTRY_ON_MIGRATE": False,
    "TOKEN": {
        # Signing keys by kid; the hub is given the same ones. None: the
        # one key is IZANA_MWT_SECRET when that setting exists, else tokens
        # cannot be minted (check mizan_hub.E008 says so when views need it).
        "KEYS": None,
        # The kid new tokens are signed with (a key of KEYS).
        "KID": "v1",
        # HS256/384/512, RS256 or ES256 (the last two need cryptography and
        # a PEM private key in KEYS).
        "ALGORITHM": "HS256",
        # Connection token lifetime in seconds (MWT's default).
        "LIFETIME": 300,
        # The connection token's aud claim (izana's decode_mwt expects
        # "izana" unless told otherwise).
        "AUDIENCE": "mizan",
        # Subscription token lifetime in seconds (SPEC section 12).
        "SUBSCRIPTION_LIFETIME": 60,
        # "auto": mint connection tokens with izana_core.mwt.create_mwt when
        # it is installed and ALGORITHM is HS256; True: always; False: never.
        "USE_IZANA": "auto",
    },
    "WORKER": {
        # The consumer group on {prefix}in that Django workers share.
        "GROUP": "django",
        # How long one XREADGROUP waits (ms); also how fast SIGTERM is seen.
        "BLOCK_MS": 2000,
        # Entries read at a time.
        "COUNT": 32,
        # Entries of one read handled at once, by that many threads (1: in
        # order, one at a time). Handlers must be thread-safe above 1.
        "CONCURRENCY": 1,
        # Entries pending longer than this (ms) belong to a dead worker and
        # are claimed (XAUTOCLAIM).
        "CLAIM_IDLE_MS": 60000,
        # rpc/ctx entries older than this (ms) are acknowledged unhandled:
        # the hub has answered TIMEOUT long ago. 0 handles them all.
        "MAX_RPC_AGE_MS": 60000,
        # Modules to import for their @rpc/@channel_handler registrations,
        # besides every installed app's "hub" module.
        "HANDLER_MODULES": [],
    },
    "IZANA": {
        # "auto": use django-izana's registries when it is installed.
        "ENABLED": "auto",
        # Where izana's urls are mounted, for the registry's "endpoints".
        "BASE_URL": "/api/izana",
    },
}

NESTED = ("TOKEN", "WORKER", "IZANA")

#: The hub's settings (``server/src/core/mh_config.c``'s table; flag ``--name``
#: with ``-`` for ``_``, config file line ``name = value``).
#: tests/test_hub_config.py checks this against ``mizan-hub --help``.
HUB_SETTINGS = (
    "listen", "redis", "redis_prefix", "hub_id", "allow_anonymous", "workers", "tls_cert",
    "tls_key", "max_frame", "ping_interval", "pong_timeout", "queue_max_msgs",
    "queue_max_bytes", "queue_soft_bytes", "queue_soft_seconds", "max_subs", "rpc_timeout_ms",
    "spread_max_ms", "refetch_rate", "drain_window", "canary_interval_ms", "canary_window",
    "redis_backoff_max_ms", "inbound_maxlen", "jwt_keys", "jwt_secret", "jwt_kid",
    "jwt_audience", "jwt_issuer", "jwt_leeway", "jwt_cache", "token_query", "expiry_warning",
    "registry", "session_cookie", "session_max_age", "django_secret_key",
    "django_secret_keys_file",
    "allowed_origins", "max_connections", "max_connections_per_ip", "frame_rate",
    "frame_burst", "header_timeout", "inbound_rate", "inbound_conn_rate", "log_level",
    "log_format", "admin_listen", "heal_timeout_ms", "max_shapes", "proxy_protocol",
    "resume_burst", "resume_rate", "trusted_proxies", "redis_sentinels", "redis_master_name",
    "redis_sentinel_password", "redis_tls_ca", "redis_tls_cert", "redis_tls_key",
    "redis_connect_timeout_ms", "registry_from_redis", "ops_public", "redis_shards",
    "presence_heartbeat_ms", "presence_max",
)

#: Hub settings ``mizan_hub_config`` writes from Django's settings (and the
#: secrets it keeps out of the config file), so ``MIZAN_HUB["HUB"]`` cannot
#: set them: each maps to where its value comes from.
DERIVED = {
    "redis": "MIZAN_HUB['REDIS_URL']",
    "redis_shards": "MIZAN_HUB['REDIS_SHARDS']",
    "redis_prefix": "MIZAN_HUB['PREFIX']",
    "redis_sentinels": "MIZAN_HUB['REDIS_SENTINELS']",
    "redis_master_name": "MIZAN_HUB['REDIS_MASTER_NAME']",
    "redis_sentinel_password": "MIZAN_HUB['REDIS_SENTINEL_PASSWORD']",
    "jwt_keys": "MIZAN_HUB['TOKEN']['KEYS'] (written to a JWKS file)",
    "jwt_secret": "MIZAN_HUB['TOKEN']['KEYS'] (written to a JWKS file)",
    "jwt_kid": "MIZAN_HUB['TOKEN']['KEYS'] (written to a JWKS file)",
    "jwt_audience": "MIZAN_HUB['TOKEN']['AUDIENCE']",
    "registry": "MIZAN_HUB['CONTEXTS'] and ['CHANNELS'] (written to a registry file)",
    "session_cookie": "SESSION_COOKIE_NAME",
    "session_max_age": "SESSION_COOKIE_AGE",
    "django_secret_key": "SECRET_KEY (written to a secret-keys file)",
    "django_secret_keys_file": "SECRET_KEY and SECRET_KEY_FALLBACKS",
    "allowed_origins": "MIZAN_HUB['ALLOWED_ORIGINS'], CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS",
    "config": "the command line",
}


def user_settings() -> dict:
    """``settings.MIZAN_HUB`` as given (``{}`` when absent)."""
    value = getattr(settings, "MIZAN_HUB", {})
    return value if isinstance(value, dict) else {}


@functools.lru_cache(maxsize=None)
def hub_settings() -> dict[str, Any]:
    """The effective settings: :data:`DEFAULTS` overlaid with ``MIZAN_HUB``.

    Not validated here (the system checks do that, with ids a user can look
    up); a value of the wrong type fails where it is used.
    """
    given = user_settings()
    merged = copy.deepcopy(DEFAULTS)
    for key, value in given.items():
        if key in NESTED and isinstance(value, dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def get(key: str) -> Any:
    return hub_settings()[key]


def prefix() -> str:
    return hub_settings()["PREFIX"]


def token_keys() -> dict[str, str]:
    """The signing keys by kid, with izana's MWT secret as the fallback."""
    keys = hub_settings()["TOKEN"]["KEYS"]
    if keys:
        return dict(keys)
    secret = getattr(settings, "IZANA_MWT_SECRET", None)
    if secret:
        return {hub_settings()["TOKEN"]["KID"]: secret}
    return {}


def sentinels() -> list[tuple[str, int]]:
    """``REDIS_SENTINELS`` as (host, port) pairs (``[]``: no Sentinel).
    Entries are ``"host:port"`` (``"[::1]:26379"`` for IPv6) or
    ``(host, port)``; a ValueError names a bad one (check E002 does too)."""
    out = []
    for entry in hub_settings()["REDIS_SENTINELS"] or []:
        if isinstance(entry, (tuple, list)) and len(entry) == 2:
            host, port = str(entry[0]), entry[1]
        elif isinstance(entry, str):
            host, sep, port = entry.rpartition(":")
            if not sep:
                raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        else:
            raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not 'host:port' or "
                             "(host, port)")
        try:
            port = int(port)
        except (TypeError, ValueError):
            port = 0
        if not host or not 0 < port < 65536 or any(c in host for c in " ,\r\n"):
            raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
        out.append((host, port))
    return out


def allowed_origins() -> list[str]:
    """The Origins the hub should accept cookie-authenticated upgrades from.

    ``MIZAN_HUB["ALLOWED_ORIGINS"]`` when it is a list; else every
    ``CSRF_TRUSTED_ORIGINS`` entry (full origins, ``https://*.example.com``
    included, the same syntax the hub reads) and, for every
    ``ALLOWED_HOSTS`` entry, ``https://host`` (``.example.com`` gives
    ``https://example.com`` and ``https://*.example.com``), plus
    ``http://`` ones under ``DEBUG``. ``"*"`` allows any host and so names
    no origin: it is left out. ``ALLOWED_HOSTS`` carry no port, so a page
    served on another port (``runserver``'s 8000) needs its origin in
    ``CSRF_TRUSTED_ORIGINS`` or ``ALLOWED_ORIGINS``.
    """
    given = hub_settings()["ALLOWED_ORIGINS"]
    if given is not None:
        return list(dict.fromkeys(given))
    origins = [str(o).rstrip("/") for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])]
    schemes = ("https", "http") if settings.DEBUG else ("https",)
    for host in getattr(settings, "ALLOWED_HOSTS", []):
        host = str(host).lower()
        if not host or host == "*":
            continue
        for scheme in schemes:
            if host.startswith("."):
                origins += [f"{scheme}://{host[1:]}", f"{scheme}://*{host}"]
            else:
                origins.append(f"{scheme}://{host}")
    return list(dict.fromkeys(origins))


_listeners = []


def on_reset(func):
    """Register ``func`` to run when the settings change (caches built on
    them, such as the Redis client, are dropped)."""
    _listeners.append(func)
    return func


def reset() -> None:
    hub_settings.cache_clear()
    for func in _listeners:
        func()


@receiver(setting_changed)
def _setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("MIZAN_HUB", "IZANA_MWT_SECRET"):
        reset()
