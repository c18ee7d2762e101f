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
    if client is not None:
        try:
            client.close()
        except redis.RedisError:
            pass
