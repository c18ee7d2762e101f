"""The Redis client every part of the app shares.

One ``redis.Redis`` (with its connection pool) per process, built from
``REDIS_URL`` with short timeouts: publishing runs inside requests, and a
Redis that does not answer must cost a request about ``REDIS_TIMEOUT``
seconds, not a hung worker thread. Dropped when the settings change.
"""

from __future__ import annotations

import threading

import redis

from . import conf

_lock = threading.Lock()
_client: redis.Redis | None = None
_async_clients: dict = {}  # event loop -> redis.asyncio.Redis


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
    belong to that loop, so each loop gets its own; those of closed loops
    are dropped here)."""
    import asyncio

    import redis.asyncio

    loop = asyncio.get_running_loop()
    with _lock:
        for old in [old for old in _async_clients if old.is_closed()]:
            del _async_clients[old]
        client = _async_clients.get(loop)
        if client is None:
            timeout = conf.get("REDIS_TIMEOUT")
            client = _async_clients[loop] = redis.asyncio.Redis.from_url(
                conf.get("REDIS_URL"), socket_connect_timeout=timeout,
                socket_timeout=timeout, health_check_interval=30)
    return client


async def aclose_async_redis() -> None:
    """Close the running loop's client (before the loop ends: an asyncio
    server's shutdown, a test's ``asyncio.run``); the next use builds one."""
    import asyncio

    with _lock:
        client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


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
