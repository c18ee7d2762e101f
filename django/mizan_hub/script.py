"""The publish script (``lua/publish.lua``) and how it is called.

SPEC section 11 requires the counters and the ``PUBLISH`` to happen in one
atomic step. The script is sent by hash (``EVALSHA``); a Redis that does not
have it cached (a restart, ``SCRIPT FLUSH``, a fail-over) answers
``NOSCRIPT`` and gets the full text once with ``EVAL``, which also caches it.
Other publishers (any language) may ship the same file: :data:`SOURCE`.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Sequence

import redis
from redis.exceptions import NoScriptError

SOURCE: str = resources.files(__package__).joinpath("lua/publish.lua").read_text("utf-8")
SHA1: str = hashlib.sha1(SOURCE.encode("utf-8")).hexdigest()


def run(client: redis.Redis, keys: Sequence[str], args: Sequence[str | bytes | int]):
    """Run the publish script; ``EVAL`` when Redis lacks it (``NOSCRIPT``)."""
    try:
        return client.evalsha(SHA1, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(SOURCE, len(keys), *keys, *args)


async def arun(client, keys: Sequence[str], args: Sequence[str | bytes | int]):
    """:func:`run` on a ``redis.asyncio`` client."""
    try:
        return await client.evalsha(SHA1, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(SOURCE, len(keys), *keys, *args)
