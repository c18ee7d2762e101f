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

from . import protocol, sessions, stats
from .publishing import begin_request, end_request, invalidate, not_yet_declared
from .transports import declared_invalidations

logger = logging.getLogger("mizan_hub.middleware")


class MizanHubMiddleware:
    """Put it after ``SessionMiddleware`` and ``AuthenticationMiddleware``.

    Only successful responses (status < 400) are read: an error answer
    changed nothing. Entries the view already passed to ``invalidate()``
    during the request are not sent twice. A malformed declaration is logged
    and counted (``middleware_bad_declarations``); the response is returned
    untouched either way.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session_key = sessions.stored_session_key(request)
        token = begin_request()
        try:
            response = self.get_response(request)
            if response.status_code < 400:
                self.publish_declared(request, response)
        finally:
            end_request(token)
        if session_key:
            sessions.check_rotation(request, session_key)
        return response

    def publish_declared(self, request, response) -> None:
        try:
            entries = declared_invalidations(response)
        except protocol.ProtocolError as exc:
            stats.incr("middleware_bad_declarations")
            logger.warning("mizan-hub: %s %s declared a bad invalidation: %s",
                           request.method, request.path, exc)
            return
        entries = not_yet_declared(entries)
        if entries:
            invalidate(*entries)
