"""The Redis clients every part of the app shares.

One ``redis.Redis`` (with its connection pool) per process and shard, built
from ``REDIS_URL`` -- or, with ``REDIS_SHARDS``, one per URL of that list
(SPEC section 11.1) -- with short timeouts: publishing runs inside requests,
and a Redis that does not answer must cost a request about
``REDIS_TIMEOUT`` seconds, not a hung worker thread. Dropped when the
settings change.

Which shard holds what is SPEC 11.1's mapping (:func:`shard_of`): a
context's versions by the context's name, a channel instance's position
and history by its canonical key; the registry, the session registry and
the ``logout``/``disconnect``/``registry`` envelopes live on the first
shard (``get_redis()`` without an argument).
"""

from __future__ import annotations

import threading

import redis

from . import conf, protocol

_lock = threading.Lock()
_clients: dict[int, redis.Redis] = {}  # shard -> client
_async_clients: dict = {}  # (event loop, shard) -> redis.asyncio.Redis


def shard_urls() -> list[str]:
    """The Redis URLs of the shards, in order: ``REDIS_SHARDS``, or
    ``[REDIS_URL]`` (one shard) when it is not set."""
    shards = conf.get("REDIS_SHARDS")
    return list(shards) if shards else [conf.get("REDIS_URL")]


def shard_count() -> int:
    return len(shard_urls())


def shard_of(shard_key: str) -> int:
    """The shard that owns a shard key (SPEC 11.1): a context's name, a
    channel instance's canonical key, a connection id."""
    return protocol.shard(shard_key, shard_count())


def get_redis(shard: int = 0) -> redis.Redis:
    """The shared client of ``shard`` (bytes in, bytes out: envelopes are
    exact bytes); the first shard by default."""
    client = _clients.get(shard)
    if client is None:
        urls = shard_urls()
        if not 0 <= shard < len(urls):
            raise ValueError(f"no Redis shard {shard} (there are {len(urls)})")
        with _lock:
            client = _clients.get(shard)
            if client is None:
                timeout = conf.get("REDIS_TIMEOUT")
                client = _clients[shard] = redis.Redis.from_url(
                    urls[shard],
                    socket_connect_timeout=timeout,
                    socket_timeout=timeout,
                    health_check_interval=30,
                )
    return client


def get_async_redis(shard: int = 0) -> "redis.asyncio.Redis":
    """A ``redis.asyncio`` client of ``shard`` for the running event loop
    (its connections belong to that loop, so each loop gets its own; those
    of closed loops are dropped here)."""
    import asyncio

    import redis.asyncio

    loop = asyncio.get_running_loop()
    urls = shard_urls()
    if not 0 <= shard < len(urls):
        raise ValueError(f"no Redis shard {shard} (there are {len(urls)})")
    with _lock:
        for old in [old for old in _async_clients if old[0].is_closed()]:
            del _async_clients[old]
        client = _async_clients.get((loop, shard))
        if client is None:
            timeout = conf.get("REDIS_TIMEOUT")
            client = _async_clients[(loop, shard)] = redis.asyncio.Redis.from_url(
                urls[shard], socket_connect_timeout=timeout,
                socket_timeout=timeout, health_check_interval=30)
    return client


async def aclose_async_redis() -> None:
    """Close the running loop's client (before the loop ends: an asyncio
    server's shutdown, a test's ``asyncio.run``); the next use builds one."""
    import asyncio

    loop = asyncio.get_running_loop()
    with _lock:
        mine = [k for k in _async_clients if k[0] is loop]
        clients = [_async_clients.pop(k) for k in mine]
    for client in clients:
        await client.aclose()


def key(*parts: str) -> str:
    """A Redis name under the configured prefix: ``key("v:", "user")``."""
    return conf.prefix() + "".join(parts)


def events_channel() -> str:
    return key("events")


@conf.on_reset
def close() -> None:
    """Drop the clients (their pools are closed): the next use builds new ones."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
        # asyncio clients are closed with their loop; new calls build new ones
        _async_clients.clear()
    for client in clients:
        try:
            client.close()
        except redis.RedisError:
            pass
