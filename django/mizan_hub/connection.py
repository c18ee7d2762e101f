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

With ``REDIS_SENTINELS`` (one shard: the two do not combine) the client is
redis-py's Sentinel-managed one: each new connection asks the Sentinels for
the master named ``REDIS_MASTER_NAME``, and a connection to a server that was
demoted (``READONLY``) or went away fails and is replaced by one to the
current master. So after a failover the publisher, the outbox relay and the
worker write where the hubs (which follow the same Sentinels) read; what
failed meanwhile stays in the outbox.
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


def _sentinel_args() -> tuple[list[tuple[str, int]], dict, dict]:
    """(sentinels, the master connections' options, the Sentinel
    connections' options) from the settings: the master's database, user,
    password and TLS options come from ``REDIS_URL`` (its host and port are
    not used), the Sentinels get ``REDIS_SENTINEL_PASSWORD`` and, for a
    ``rediss://`` URL, TLS like the hub."""
    timeout = conf.get("REDIS_TIMEOUT")
    master = redis.connection.parse_url(conf.get("REDIS_URL"))
    for name in ("host", "port", "path"):
        master.pop(name, None)
    tls = master.pop("connection_class", None) is redis.SSLConnection
    ssl = {k: v for k, v in master.items() if k.startswith("ssl_")}
    timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    master.update(timeouts, health_check_interval=30)
    sentinel = dict(timeouts, password=conf.get("REDIS_SENTINEL_PASSWORD") or None)
    if tls:
        master["ssl"] = True
        sentinel.update(ssl, ssl=True)
    return conf.sentinels(), master, sentinel


def _build(url: str, use_async: bool):
    """A client of the server at ``url``, or of the Sentinels' master."""
    if not conf.sentinels():
        timeout = conf.get("REDIS_TIMEOUT")
        if use_async:
            from redis.asyncio import Redis
        else:
            Redis = redis.Redis
        return Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                              health_check_interval=30)
    if use_async:
        from redis.asyncio.sentinel import Sentinel
    else:
        from redis.sentinel import Sentinel
    sentinels, master, sentinel = _sentinel_args()
    return Sentinel(sentinels, sentinel_kwargs=sentinel).master_for(
        conf.get("REDIS_MASTER_NAME"), **master)


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
                client = _clients[shard] = _build(urls[shard], use_async=False)
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
            client = _async_clients[(loop, shard)] = _build(urls[shard], use_async=True)
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
