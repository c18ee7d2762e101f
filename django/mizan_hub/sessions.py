"""The session registry (SPEC section 12): who a session cookie belongs to.

The hub authenticates cookie-bearing WebSocket upgrades without calling
Django. For the database and cache session engines it looks the cookie up in
Redis: at login Django writes ``{prefix}sess:{sha256 hex of the session
key}`` = ``{"sub", "staff", "super"}`` expiring with the session; at logout it
deletes the entry and publishes ``{"kind": "logout", "session": hash}``, on
which every hub closes that session's sockets (4005). Only a hash is stored,
so a Redis dump does not leak live session keys.

Signed-cookie sessions have no server-side key: the cookie *is* the session
data, signed with ``SECRET_KEY``, and the hub verifies it itself. Its value
changes whenever the session data changes, so it cannot name a registry
entry, and a logged-out cookie stays validly signed until it expires. So at
login a random id is stored in the session (``_mizan_hub_sid``, inside the
signed data) and the registry entry is keyed by its sha256; logout deletes
that entry and publishes its hash. A hub that finds ``_mizan_hub_sid`` in a
verified cookie can then refuse cookies whose entry is gone and close the
sockets of a session that logged out -- see the README.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from importlib import import_module

import redis
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from . import conf, protocol, stats
from .connection import events_channel, get_redis, key
from .publishing import PublishError

logger = logging.getLogger("mizan_hub.sessions")

#: Where signed-cookie sessions keep the id their registry entry is keyed by.
SID_KEY = "_mizan_hub_sid"


def signed_cookies() -> bool:
    """Whether the session engine keeps the session in a signed cookie."""
    from django.contrib.sessions.backends.signed_cookies import SessionStore as Signed
    engine = import_module(settings.SESSION_ENGINE)
    return issubclass(engine.SessionStore, Signed)


def session_hash(secret: str) -> str:
    """The registry id of a session key (or signed-cookie session id)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def registry_id(session) -> str | None:
    """The registry id of a session, or None when it has none yet.

    Signed-cookie sessions have their own key space, ``sha256("s:" + sid)``:
    the ``_mizan_hub_sid`` can be read inside every signed cookie, and sent
    as a bare cookie value it must never name a registry entry. A bare value
    is hashed as it is, and the hub only takes bare values made of Django's
    session-key characters (no ``:``), so it can never reach this space
    (SPEC 12.1)."""
    if signed_cookies():
        sid = session.get(SID_KEY)
        return session_hash("s:" + sid) if sid else None
    sid = session.session_key
    return session_hash(sid) if sid else None


def identity(user) -> dict:
    """The identity the hub attaches to the connection (as in tokens)."""
    return {"sub": str(user.pk), "staff": bool(getattr(user, "is_staff", False)),
            "super": bool(getattr(user, "is_superuser", False))}


def _enabled(request) -> bool:
    from . import testing

    # Test mode (mizan_hub.testing) leaves Redis alone: no registry.
    return (bool(conf.get("SESSIONS")) and getattr(request, "session", None) is not None
            and not testing.active())


def _guarded(what: str, call) -> None:
    try:
        call()
    except redis.RedisError as exc:
        stats.incr("session_failures")
        logger.error("mizan-hub: session registry %s failed: %s", what, exc)
        if conf.get("STRICT"):
            raise PublishError(f"session registry {what} failed: {exc}") from exc


def _write(rid: str, user, ttl: int) -> None:
    value = json.dumps(identity(user), separators=(",", ":"))
    get_redis().set(key("sess:", rid), value, ex=max(1, int(ttl)))
    stats.incr("sessions_registered")


def _remove(rid: str) -> int:
    """Delete an entry and tell the hubs; returns how many entries went."""
    removed = get_redis().delete(key("sess:", rid))
    envelope = protocol.encode_envelope({"kind": "logout", "session": rid})
    get_redis().publish(events_channel(), envelope.encode("utf-8"))
    stats.incr("sessions_removed")
    return removed


@receiver(user_logged_in, dispatch_uid="mizan_hub.sessions.logged_in")
def logged_in(sender, request, user, **kwargs) -> None:
    if not _enabled(request):
        return
    session = request.session
    if signed_cookies():
        session[SID_KEY] = secrets.token_urlsafe(32)
    rid = registry_id(session)
    if rid is None:  # a session store that made no key: nothing to name
        logger.warning("mizan-hub: login without a session key, not registered")
        return
    _guarded("write", lambda: _write(rid, user, session.get_expiry_age()))


@receiver(user_logged_out, dispatch_uid="mizan_hub.sessions.logged_out")
def logged_out(sender, request, user, **kwargs) -> None:
    # Sent by django.contrib.auth.logout() before the session is flushed,
    # so the key (or the signed-cookie sid) is still there.
    if not _enabled(request):
        return
    rid = registry_id(request.session)
    if rid is not None:
        _guarded("delete", lambda: _remove(rid))


def stored_session_key(request) -> str | None:
    """The session key a request arrived with (database and cache engines;
    None otherwise), read before the view runs."""
    if not _enabled(request) or signed_cookies():
        return None
    return request.session.session_key


def check_rotation(request, old_key: str) -> None:
    """Keep the entry in step with the session after a response.

    When a view rotated the session key of a logged-in session without
    logging in (``update_session_auth_hash`` after a password change calls
    ``cycle_key``), the entry moves to the new key and the old key's sockets
    are closed: they were opened with a cookie that no longer exists. When
    the session is about to be saved (modified, or
    ``SESSION_SAVE_EVERY_REQUEST``), its expiry moves, and so does the
    entry's.
    """
    new_key = request.session.session_key
    if not new_key or SESSION_KEY not in request.session:
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    if new_key == old_key:
        if request.session.modified or settings.SESSION_SAVE_EVERY_REQUEST:
            ttl = max(1, int(request.session.get_expiry_age()))
            _guarded("expiry", lambda: get_redis().expire(key("sess:", session_hash(new_key)),
                                                          ttl, xx=True))
        return

    def move() -> None:
        if get_redis().exists(key("sess:", session_hash(old_key))):
            _remove(session_hash(old_key))
            _write(session_hash(new_key), user, request.session.get_expiry_age())

    _guarded("move", move)
