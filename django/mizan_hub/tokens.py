"""Connection tokens (MWT-compatible) and subscription tokens (SPEC section 12).

A *connection token* is what a browser shows the hub instead of a cookie
(``auth`` frame, ``Authorization: Bearer``, ``X-Mizan-Token``). It is
Mizan's MWT: claims ``sub`` (the user's pk as a string), ``staff``,
``super``, ``pkey`` (the permission-state hash), ``aud``, ``iat``, ``nbf``,
``exp``, with the key id in the JOSE header (``kid``), 300 s by default --
so that izana_core's ``decode_mwt`` reads the tokens minted here and the hub
reads the ones izana mints. When izana is installed (and the algorithm is
HS256) the token is minted by ``izana_core.mwt.create_mwt`` itself.

A *subscription token* answers a ``token`` guard: Django decided that this
connection may subscribe to this context/channel with these params, and
signs ``scope``, ``name``, ``params`` (string forms), ``sub`` and a short
``exp``. It has no ``aud``, so a hub that requires one on connection tokens
cannot be handed a subscription token as a connection token.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Mapping

import jwt
from django.core.exceptions import ImproperlyConfigured

from . import conf, protocol

__all__ = ["connection_token", "subscription_token", "decode", "permission_key"]


def _signing_key() -> tuple[str, Any, str]:
    """(kid, key, algorithm) new tokens are signed with."""
    token = conf.get("TOKEN")
    keys = conf.token_keys()
    kid = token["KID"]
    if kid not in keys:
        raise ImproperlyConfigured(
            "MIZAN_HUB['TOKEN']: no signing key; set KEYS = {kid: secret} "
            f"with an entry for KID {kid!r} (check mizan_hub.E008)")
    return kid, keys[kid], token["ALGORITHM"]


def permission_key(user: Any) -> str:
    """MWT's ``pkey``: sha256 of ``staff:super:sorted,perms``, as izana_core
    computes it, so caches keyed by it agree."""
    perms = sorted(user.get_all_permissions()) if hasattr(user, "get_all_permissions") else []
    blob = "{}:{}:{}".format("1" if getattr(user, "is_staff", False) else "0",
                             "1" if getattr(user, "is_superuser", False) else "0",
                             ",".join(perms))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _use_izana(algorithm: str) -> bool:
    choice = conf.get("TOKEN")["USE_IZANA"]
    if choice is False or algorithm != "HS256":
        return False
    try:
        import izana_core.mwt  # noqa: F401
    except ImportError:
        if choice is True:
            raise ImproperlyConfigured("TOKEN['USE_IZANA'] is True but izana-core "
                                       "is not installed") from None
        return False
    return True


#: A presence member's ``info``, written compactly, is at most this many bytes (SPEC 11.2).
MAX_INFO_BYTES = protocol.MAX_INFO_BYTES

_NO_INFO = object()


def connection_token(user: Any, *, lifetime: int | None = None,
                     info: Any = _NO_INFO) -> tuple[str, int]:
    """A connection token for ``user`` and the Unix time it expires.

    ``info`` (any JSON value but ``None``, at most 1024 bytes written
    compactly) is what the hub shows as this connection's ``info`` in the
    presence of channels it subscribes to (SPEC 11.2): a display name, an
    avatar URL. A token with ``info`` is minted here, not by izana.
    """
    kid, secret, algorithm = _signing_key()
    settings = conf.get("TOKEN")
    ttl = int(settings["LIFETIME"] if lifetime is None else lifetime)
    audience = settings["AUDIENCE"]
    if info is not _NO_INFO:
        protocol._check_tree(info)  # JSON only: no NaN, no lone surrogates, no other types
        if info is None or len(protocol.compact_json(info).encode("utf-8")) > MAX_INFO_BYTES:
            raise ValueError(f"info is JSON other than None of at most {MAX_INFO_BYTES} bytes")
    if info is _NO_INFO and _use_izana(algorithm):
        from izana_core.mwt import create_mwt
        token = create_mwt(user, secret, ttl=ttl, audience=audience, kid=kid)
        return token, int(jwt.decode(token, options={"verify_signature": False})["exp"])
    now = int(time.time())
    claims = {
        "sub": str(user.pk),
        "staff": bool(getattr(user, "is_staff", False)),
        "super": bool(getattr(user, "is_superuser", False)),
        "pkey": permission_key(user),
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if info is not _NO_INFO:
        claims["info"] = info
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid}), now + ttl


def subscription_token(scope: str, name: str, params: Mapping[str, Any] | None = None, *,
                       user: Any = None, lifetime: int | None = None) -> tuple[str, int]:
    """A subscription token for one context or channel instance.

    ``params`` are written in their string forms (SPEC section 1), which is
    how the hub compares them with the subscribe frame's. ``sub`` is the
    user's pk when ``user`` is authenticated; an anonymous connection gets a
    token without ``sub``.
    """
    if scope not in ("context", "channel"):
        raise ValueError("scope is 'context' or 'channel'")
    normalized = protocol.decode_invalidation(
        [{"context": name, "params": dict(params or {})}])[0]["params"]
    kid, secret, algorithm = _signing_key()
    ttl = int(conf.get("TOKEN")["SUBSCRIPTION_LIFETIME"] if lifetime is None else lifetime)
    now = int(time.time())
    claims: dict[str, Any] = {"scope": scope, "name": name, "params": normalized,
                              "iat": now, "exp": now + ttl}
    if user is not None and getattr(user, "is_authenticated", False):
        claims["sub"] = str(user.pk)
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid}), now + ttl


def decode(token: str, *, audience: str | None = None) -> dict:
    """Verify a token minted here (by its ``kid``) and return its claims;
    ``audience`` is checked for connection tokens. Raises ``jwt.PyJWTError``.
    The hub does this in C; this is for tests and Python consumers."""
    header = jwt.get_unverified_header(token)
    keys = conf.token_keys()
    kid = header.get("kid")
    if kid not in keys:
        raise jwt.InvalidKeyError(f"unknown kid {kid!r}")
    algorithm = conf.get("TOKEN")["ALGORITHM"]  # pinned: never the header's own
    key = keys[kid]
    if not algorithm.startswith("HS"):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        key = load_pem_private_key(key.encode() if isinstance(key, str) else key,
                                   password=None).public_key()
    options = {} if audience else {"verify_aud": False}
    return jwt.decode(token, key, algorithms=[algorithm], audience=audience, options=options)
