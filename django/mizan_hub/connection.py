"""The Redis client every part of the app shares.

One ``redis.Redis`` (with its connection pool) per process, built from
``REDIS_URL`` with short timeouts: publishing runs inside requests, and a
Redis that does not answer must cost a request about ``REDIS_TIMEOUT``
seconds, not a hung worker thread. Dropped when the settings change.
"""

from __future__ import annotations

import threading
import weakref

import redis

from . import conf

_lock = threading.Lock()
_client: redis.Redis | None = None
_async_clients: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def get_redis() -> redis.Redis:
    """The shared client (bytes in, bytes out: envelopes are exact bytes)."""
    global _client
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                timeout = conf.get("REDIS_TIMEOUT")
                _client = redis.Redis.from_url(
                    conf.get("REDIS_URL"),
                    socket_connect_timeout=timeout,
                    socket_timeout=timeout,
                    health_check_interval=30,
                )
            client = _client
    return client


def get_async_redis() -> "redis.asyncio.Redis":
    """A ``redis.asyncio`` client for the running event loop (its connections
    belong to that loop, so each loop gets its own, dropped with it)."""
    import asyncio

    import redis.asyncio

    loop = asyncio.get_running_loop()
    with _lock:
        client = _async_clients.get(loop)
        if client is None:
            timeout = conf.get("REDIS_TIMEOUT")
            client = _async_clients[loop] = redis.asyncio.Redis.from_url(
                conf.get("REDIS_URL"), socket_connect_timeout=timeout,
                socket_timeout=timeout, health_check_interval=30)
    return client


def key(*parts: str) -> str:
    """A Redis name under the configured prefix: ``key("v:", "user")``."""
    return conf.prefix() + "".join(parts)


def events_channel() -> str:
    return key("events")


@conf.on_reset
def close() -> None:
    """Drop the client (its pool is closed): the next use builds a new one."""
    global _client
    with _lock:
        client, _client = _client, None
        # asyncio clients are closed with their loop; new calls build new ones
        _async_clients.clear()
    if client is not None:
        try:
            client.close()
        except redis.RedisError:
            pass
