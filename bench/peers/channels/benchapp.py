"""Django Channels peer for bench/run (issue 8): the smallest ASGI app a Django
team would write for cache invalidation over WebSocket.

A client subscribes with the hub's frame {"action":"subscribe","context":C,
"params":{...}}; the consumer joins group C (or C.K when params.k is set) in
the channel layer and answers {"subscribed":true}. The publisher
(publish.py) calls group_send through channels_redis' RedisChannelLayer (the
layer Channels documents as the default for production), so every event goes
through Redis; the consumer forwards the event's text unchanged, with the
publisher's ts.

One change from the defaults: the layer's Redis pool is redis-py's
BlockingConnectionPool (100 connections, waits for a free one). With the
default ConnectionPool, more than 100 consumers touching Redis at once (1,000
clients subscribing together) get "Too many connections" and their sockets are
closed; a team that meets a connect burst ends up here.

Settings from the environment: BENCH_REDIS (redis://host:port/db).
"""
import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "benchapp.BlockingRedisChannelLayer",
            "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")]},
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from channels_redis.core import RedisChannelLayer  # noqa: E402
from redis import asyncio as aioredis  # noqa: E402


class BlockingRedisChannelLayer(RedisChannelLayer):
    """RedisChannelLayer whose pool waits for a free connection instead of raising."""

    def create_pool(self, index):
        host = dict(self.hosts[index])
        return aioredis.BlockingConnectionPool.from_url(host.pop("address"), max_connections=100,
                                                        timeout=120, **host)


ACK = '{"type":"subscribed","subscribed":true}'


def group_of(context, params):
    k = (params or {}).get("k")
    return str(context) if k is None else f"{context}.{k}"


class BenchConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.joined = []
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        try:
            m = json.loads(text_data or "")
        except ValueError:
            await self.send('{"type":"error","error":"bad json"}')
            return
        if m.get("action") != "subscribe":
            return
        group = group_of(m.get("context"), m.get("params"))
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)
        await self.send(ACK)

    async def bench_event(self, event):
        await self.send(event["text"])

    async def disconnect(self, code):
        for g in self.joined:
            await self.channel_layer.group_discard(g, self.channel_name)


application = ProtocolTypeRouter({"websocket": BenchConsumer.as_asgi()})
