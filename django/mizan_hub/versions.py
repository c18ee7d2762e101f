"""Versions in context responses (SPEC section 10.1).

A context response says which version of each context its data reflects,
in the ``X-Mizan-Version`` header::

    X-Mizan-Version: todos;v=k2f9a00q1:42, user;v=0:0

so the browser subscribes with ``since`` = that version and needs no
refetch after the first ack: the hub invalidates the subscription when
anything that may match it was published after the version.

The version is read *before* the data (SPEC 10.1 gives the argument): a
change is published only after it committed, so every event the version
counts belongs to a change the data read sees. :func:`context_versions`
wraps a view so that its versions are read (one Redis round trip for all
contexts, per shard with ``REDIS_SHARDS``) before the view runs::

    @context_versions("todos")
    def todo_list(request): ...

    @context_versions(lambda request, name: [name])
    def context_fetch(request, name): ...

A Redis that cannot be read costs nothing but the header: the response goes
out without it (logged, counted as ``version_read_failed``) and the client
falls back to its refetch after the first ack.

Server-rendered pages carry the same string in their embedded data (the
browser cannot read a page's own response headers): the decorator keeps
what it read on the request (:func:`request_version`), the context
processor ``mizan_hub.context_processors.versions`` hands it to templates
as ``mizan_version``, and ``mizan_hub.izana_ssr.IzanaTemplates`` (izana's
SSR backend) embeds it, and the version of izana's ``global`` context,
read before its bundle, in the hydration data.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from asgiref.sync import iscoroutinefunction

from . import protocol, stats
from .connection import get_async_redis, get_redis, key, shard_count, shard_of

logger = logging.getLogger("mizan_hub.versions")

HEADER = "X-Mizan-Version"
#: The key of the same header value in data embedded by server-side rendering.
SSR_KEY = "mizan_version"
#: The version of a context that has no hash yet.
ZERO = "0:0"
VERSION = re.compile(r"^[0-9a-z]{1,32}:(0|[1-9][0-9]{0,15})$")
#: Where :func:`context_versions` keeps, on the request, what it read.
REQUEST_ATTR = "mizan_versions"

__all__ = ["HEADER", "SSR_KEY", "ZERO", "read_versions", "aread_versions", "version_header",
           "parse_version_header", "context_versions", "izana_context_fetch_view", "ssr_version",
           "request_version", "REQUEST_ATTR"]


def _names(contexts: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(contexts))  # once each, in order
    for name in names:
        protocol.decode_invalidation([name])  # SPEC section 1's name rules
    return names


def _version(reply: list) -> str:
    epoch, n = reply
    if epoch is None:
        # No hash (or one without an epoch, which the publish script never
        # writes): 0:0 is the version that any later publish invalidates.
        return ZERO
    text = f"{epoch.decode('ascii')}:{int(n or 0)}"
    if not VERSION.match(text):
        raise protocol.ProtocolError("bad_version", f"{text!r} in Redis is not a version")
    return text


def _recording() -> bool:
    """Test mode (mizan_hub.testing): nothing is ever published, so every
    context is at 0:0 and Redis is not asked."""
    from . import testing
    return testing.active()


def read_versions(contexts: Iterable[str], client: redis.Redis | None = None) -> dict[str, str]:
    """``{context: "E:N"}`` for these contexts, read in one round trip
    (``HMGET v:C e n`` per context, pipelined); ``"0:0"`` for a context
    never published (and for every context in test mode, without Redis).
    Call it before reading the data. Raises ``redis.RedisError`` when Redis
    cannot be read."""
    names = _names(contexts)
    if not names:
        return {}
    if client is None and _recording():
        return dict.fromkeys(names, ZERO)
    out: dict[str, str] = {}
    for shard, part in _by_shard(names, client):
        pipe = (client or get_redis(shard)).pipeline(transaction=False)
        for name in part:
            pipe.hmget(key("v:", name), "e", "n")
        out.update((name, _version(reply)) for name, reply in zip(part, pipe.execute()))
    return {name: out[name] for name in names}


async def aread_versions(contexts: Iterable[str], client: Any = None) -> dict[str, str]:
    """:func:`read_versions` on ``redis.asyncio``."""
    names = _names(contexts)
    if not names:
        return {}
    if client is None and _recording():
        return dict.fromkeys(names, ZERO)
    out: dict[str, str] = {}
    for shard, part in _by_shard(names, client):
        pipe = (client or get_async_redis(shard)).pipeline(transaction=False)
        for name in part:
            pipe.hmget(key("v:", name), "e", "n")
        out.update((name, _version(reply)) for name, reply in zip(part, await pipe.execute()))
    return {name: out[name] for name in names}


def _by_shard(names: list[str], client: Any) -> list[tuple[int, list[str]]]:
    """The contexts grouped by the shard that holds their versions (SPEC
    11.1): one pipelined round trip per shard. A given ``client`` is one
    Redis: everything is read there."""
    if client is not None or shard_count() == 1:
        return [(0, names)]
    groups: dict[int, list[str]] = {}
    for name in names:
        groups.setdefault(shard_of(name), []).append(name)
    return sorted(groups.items())


def version_header(versions: Mapping[str, str]) -> str:
    """The ``X-Mizan-Version`` value of ``{context: version}``."""
    for name, version in versions.items():
        if not isinstance(version, str) or not VERSION.match(version):
            raise protocol.ProtocolError("bad_version", f"{version!r} ({name}) is not a version")
    # Names in section 5's encoding; versions as they are (0-9 a-z and ":"
    # are all tchar), so that a header stays readable in a browser's tools.
    value = ", ".join(f"{protocol._pct(name)};v={version}" for name, version in versions.items()
                      if _names([name]))
    if len(value) > protocol.MAX_HEADER_BYTES:
        raise protocol.ProtocolError("too_large", f"{HEADER} would be {len(value)} bytes")
    return value


def parse_version_header(value: str | bytes) -> dict[str, str]:
    """``{context: version}`` of an ``X-Mizan-Version`` value; a context
    listed twice with different versions is ``"0:0"``. Raises
    ``ProtocolError`` (``bad_header``) for anything SPEC 10.1 does not allow."""
    out: dict[str, str] = {}
    for entry in protocol.decode_header(value):
        if not isinstance(entry, dict) or list(entry["params"]) != ["v"] \
                or not VERSION.match(entry["params"]["v"]):
            raise protocol.ProtocolError(
                "bad_header", f"{entry!r}: an element is a context with exactly one param v=E:N")
        name, version = entry["context"], entry["params"]["v"]
        out[name] = version if out.get(name, version) == version else ZERO
    return out


def _merge(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    # Two reads of one context (nested decorators, a view that set its own
    # header): the older of two differing versions is unknown, so 0:0.
    merged = dict(old)
    for name, version in new.items():
        merged[name] = version if merged.get(name, version) == version else ZERO
    return merged


def _remember(request: Any, versions: dict[str, str] | None) -> None:
    if versions:
        try:
            setattr(request, REQUEST_ATTR, _merge(getattr(request, REQUEST_ATTR, None) or {}, versions))
        except AttributeError:
            pass  # not a request object that takes attributes: only the header then


def request_version(request: Any) -> str | None:
    """The ``X-Mizan-Version`` value of what :func:`context_versions` read
    for this request (before the view ran), to embed under :data:`SSR_KEY`
    in data the view renders into the page; None when it read nothing."""
    versions = getattr(request, REQUEST_ATTR, None)
    return version_header(versions) if versions else None


def _attach(response: Any, versions: dict[str, str] | None) -> Any:
    # Only data carries a version: an error answer has none to refetch.
    if versions and 200 <= getattr(response, "status_code", 0) < 300:
        existing = response.headers.get(HEADER)
        if existing:
            versions = _merge(parse_version_header(existing), versions)
        response.headers[HEADER] = version_header(versions)
    return response


def _failed(exc: Exception) -> None:
    if isinstance(exc, protocol.ProtocolError) and exc.code != "bad_version":
        # A context name from the URL that is no name: the view answers it.
        logger.debug("mizan-hub: no version for a bad context name: %s", exc)
        return
    stats.incr("version_read_failed")
    logger.warning("mizan-hub: versions not read (%s); the response goes without %s", exc, HEADER)


def context_versions(*contexts: str | Callable[..., Iterable[str]]) -> Callable:
    """View decorator: reads the versions of ``contexts`` before the view
    runs and sends them in ``X-Mizan-Version``. A context is a name, or a
    callable ``(request, *args, **kwargs)`` returning names (a context
    fetch view whose URL names the context). Works on sync and async views.

    Put it outermost among decorators that read data, and inside
    ``transaction.atomic`` only before the transaction's first query (SPEC
    10.1: a snapshot older than the version read would hide changes the
    version counts)."""

    _names(c for c in contexts if isinstance(c, str))  # a bad name fails here, at import

    def names(request, args, kwargs) -> list[str]:
        out: list[str] = []
        for c in contexts:
            out.extend([c] if isinstance(c, str) else c(request, *args, **kwargs))
        return out

    def decorate(view: Callable) -> Callable:
        if iscoroutinefunction(view):
            @functools.wraps(view)
            async def async_wrapper(request, *args, **kwargs):
                versions = None
                try:
                    versions = await aread_versions(names(request, args, kwargs))
                except (redis.RedisError, OSError, protocol.ProtocolError) as exc:
                    _failed(exc)
                _remember(request, versions)
                return _attach(await view(request, *args, **kwargs), versions)
            return async_wrapper

        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            versions = None
            try:
                versions = read_versions(names(request, args, kwargs))
            except (redis.RedisError, OSError, protocol.ProtocolError) as exc:
                _failed(exc)
            _remember(request, versions)
            return _attach(view(request, *args, **kwargs), versions)
        return wrapper

    return decorate


def _izana_caches() -> bool:
    """Whether izana's origin cache is on: a cached context body was read at
    an unknown time, so no version may be claimed for it."""
    from izana.cache import get_cache
    from izana.setup.settings import get_settings
    return get_cache() is not None and bool(get_settings().cache_secret)


def izana_context_fetch_view(request, context_name: str):
    """izana's context fetch (``GET .../ctx/<name>/``) with the context's
    version: mount it in place of izana's own URL::

        path("api/izana/ctx/<str:context_name>/", izana_context_fetch_view)

    When izana's origin cache is configured the answer goes without a
    version (a cached body's read time is unknown; SPEC 10.1), and the
    client refetches after its first ack as before."""
    from izana.client.executor import context_fetch_view
    if _izana_caches():
        return context_fetch_view(request, context_name)
    return _izana_versioned(request, context_name)


@context_versions(lambda request, context_name: [context_name])
def _izana_versioned(request, context_name: str):
    from izana.client.executor import context_fetch_view
    return context_fetch_view(request, context_name)


def ssr_version(*contexts: str) -> str | None:
    """The ``X-Mizan-Version`` value to embed, under :data:`SSR_KEY`, in data
    rendered into a page (SPEC 10.1); call it *before* reading that data.
    None when Redis cannot be read (embed nothing: the client refetches
    after its first ack)."""
    try:
        return version_header(read_versions(contexts))
    except (redis.RedisError, OSError) as exc:
        _failed(exc)
        return None
