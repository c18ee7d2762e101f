"""The two invalidation transports of a Mizan mutation response.

A JSON body ``{"result": ..., "invalidate": [...]}`` (the RPC path) and the
``X-Mizan-Invalidate`` header (the view path, SPEC section 5). These helpers
convert between Python entries and the header, and read what a response
declares, so the middleware can fan it out. django-izana (Mizan's published
fork) names its header ``X-Izana-Invalidate``; both are read.
"""

from __future__ import annotations

import json
from typing import Any

from . import protocol
from .publishing import normalize_entries

HEADER = "X-Mizan-Invalidate"
#: Header names read from responses, in order of preference.
HEADERS = (HEADER, "X-Izana-Invalidate")

__all__ = ["HEADER", "invalidation_header", "parse_invalidation_header",
           "add_invalidation_header", "declared_invalidations"]


def invalidation_header(*entries: Any) -> str:
    """The header value of these entries (the arguments of ``invalidate()``):
    ``invalidation_header("notifications", ("user", {"user_id": 5}))`` is
    ``"notifications, user;user_id=5"``. Byte for byte what the C library and
    the TypeScript client write (shared vectors)."""
    return protocol.encode_header(normalize_entries(entries))


def parse_invalidation_header(value: str | bytes) -> list[protocol.Entry]:
    """The normalized list a header value carries; raises ``ProtocolError``
    (with ``pos``) when it does not follow SPEC section 5."""
    return protocol.decode_header(value)


def add_invalidation_header(response: Any, *entries: Any) -> Any:
    """Append entries to a response's ``X-Mizan-Invalidate`` (keeping what is
    there); returns the response, for ``return add_invalidation_header(...)``."""
    existing = response.headers.get(HEADER, "")
    current = protocol.decode_header(existing) if existing else []
    response.headers[HEADER] = protocol.encode_header(current + normalize_entries(entries))
    return response


def _json_body_entries(response: Any) -> list | None:
    """The raw ``invalidate`` list of a JSON object body, or None. A body
    that does not contain ``"invalidate"`` (a list of rows, most answers) is
    not parsed: looking for the bytes costs far less than decoding them."""
    if getattr(response, "streaming", False):
        return None
    content_type = response.headers.get("Content-Type", "")
    if not content_type.split(";")[0].strip().lower().endswith(("/json", "+json")):
        return None
    if b'"invalidate"' not in response.content:
        return None
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and "invalidate" in body:
        return body["invalidate"]
    return None


def declared_invalidations(response: Any, *, body: bool = True) -> list[protocol.Entry]:
    """What a response declares, normalized: the JSON body's ``invalidate``
    when there is one (it is exact: izana's header writes ``{}`` params as an
    unscoped entry and ``True`` as ``"True"``), else the first header present.
    ``body=False`` reads the headers only. Raises ``ProtocolError`` for a
    malformed declaration.
    """
    raw = _json_body_entries(response) if body else None
    if raw is not None:
        return protocol.decode_invalidation(raw)
    for name in HEADERS:
        value = response.headers.get(name)
        if value is not None:
            return protocol.decode_header(value)
    return []
