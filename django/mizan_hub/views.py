"""Token views the browser calls (mount with ``include("mizan_hub.urls")``).

``GET token/`` -- a connection token for the logged-in user,
``{"token": ..., "expires": <unix time>}``; the client calls it again
before ``expires`` (the hub's ``expiring`` frame says when) and sends the
new one in a ``refresh`` frame.

``GET subscription-token/<scope>/<name>/?param=value`` -- a subscription
token for a ``token``-guarded context or channel (SPEC section 12), when the
registered guard (``@mizan_hub.subscription_guard``) or izana's own check
allows it. Params travel as query parameters, as in Mizan's context fetch.

Both answer JSON with ``Cache-Control: no-store``; refusals are
``{"error": {"code", "message"}}`` with 401/403/404. GET only: the answer is
readable by the page's own origin alone, so no CSRF token is needed.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import handlers, izana_compat, protocol
from .tokens import connection_token, subscription_token


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@never_cache
@require_GET
def token_view(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return _error(401, "unauthorized", "log in first: connection tokens are for users")
    try:
        token, expires = connection_token(user)
    except ImproperlyConfigured as exc:
        return _error(503, "unavailable", str(exc))
    return JsonResponse({"token": token, "expires": expires})


@never_cache
@require_GET
def subscription_token_view(request, scope: str, name: str):
    if scope not in ("context", "channel"):
        return _error(404, "not_found", "scope is 'context' or 'channel'")
    try:
        params = protocol.decode_invalidation(
            [{"context": name, "params": request.GET.dict()}])[0]["params"]
    except protocol.ProtocolError as exc:
        return _error(400, exc.code, str(exc))
    guard = handlers.get_guard(scope, name)
    if guard is not None:
        allowed = bool(guard(request, params))
    else:
        allowed = izana_compat.guard_allows(request, scope, name, params)
        if allowed is None:
            return _error(404, "not_found", f"no subscription guard for {scope} {name!r}")
    if not allowed:
        return _error(403, "forbidden", f"not allowed to subscribe to {scope} {name!r}")
    try:
        token, expires = subscription_token(scope, name, params, user=request.user)
    except ImproperlyConfigured as exc:
        return _error(503, "unavailable", str(exc))
    return JsonResponse({"token": token, "expires": expires})
