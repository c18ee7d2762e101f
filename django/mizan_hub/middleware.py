"""Middleware that fans out what responses declare.

Existing Mizan mutations already answer with an invalidation list (JSON
body ``invalidate`` or the ``X-Mizan-Invalidate`` header) so that the tab
that made them refetches. This middleware publishes the same list through
the hub, so every other subscribed tab refetches too, with no change to the
mutation. It also keeps the session registry in step when a view rotates the
session key without logging in (``update_session_auth_hash``).
"""

from __future__ import annotations

import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from . import protocol, sessions, stats
from .publishing import ainvalidate, begin_request, end_request, invalidate, not_yet_declared
from .transports import declared_invalidations

#: Methods whose responses' bodies are not read for invalidations (RFC 9110
#: safe methods: they change nothing); their headers still are.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

logger = logging.getLogger("mizan_hub.middleware")


class MizanHubMiddleware:
    """Put it after ``SessionMiddleware`` and ``AuthenticationMiddleware``.

    Only successful responses (status < 400) are read: an error answer
    changed nothing. A JSON body is parsed only for methods that can change
    something (not GET, HEAD, OPTIONS, TRACE: a GET list's body is never
    parsed) and only when it mentions ``"invalidate"``; headers are read on
    every response. Entries the view already passed to ``invalidate()``
    during the request are not sent twice. A malformed declaration is logged
    and counted (``middleware_bad_declarations``); the response is returned
    untouched either way.

    Sync and async capable: under ASGI with an async stack it publishes with
    ``ainvalidate()`` (the outbox row written through ``sync_to_async``,
    published on ``redis.asyncio``; inside a transaction after its commit,
    as ``invalidate()``), and reaches the session registry through
    ``sync_to_async``: the event loop never blocks on Redis.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        session_key = sessions.stored_session_key(request)
        token = begin_request()
        try:
            response = self.get_response(request)
            entries = self.declared(request, response)
            if entries:
                invalidate(*entries)
        finally:
            end_request(token)
        if session_key:
            sessions.check_rotation(request, session_key)
        return response

    async def __acall__(self, request):
        session_key = sessions.stored_session_key(request)
        token = begin_request()
        try:
            response = await self.get_response(request)
            entries = self.declared(request, response)
            if entries:
                await ainvalidate(*entries)
        finally:
            end_request(token)
        if session_key:
            await sync_to_async(sessions.check_rotation)(request, session_key)
        return response

    def declared(self, request, response) -> list:
        """What the response declares and the view has not published yet."""
        if response.status_code >= 400:
            return []
        try:
            entries = declared_invalidations(response, body=request.method not in SAFE_METHODS)
        except protocol.ProtocolError as exc:
            stats.incr("middleware_bad_declarations")
            logger.warning("mizan-hub: %s %s declared a bad invalidation: %s",
                           request.method, request.path, exc)
            return []
        return not_yet_declared(entries)
