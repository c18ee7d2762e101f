"""The mizan-hub wire protocol in pure Python (``protocol/SPEC.md``, version 1).

Django publishes what the C hub and the TypeScript client read, so the three
must agree byte for byte: on string forms of param values, on canonical keys
(their bucket numbers decide which version counter an event bumps), on the
``X-Mizan-Invalidate`` header and on the JSON shapes. This module is the
Python side of that contract and is checked by the same vectors
(``protocol/vectors/*.json``) as the other two.

It imports nothing from Django and does no I/O, so it runs without settings
and any publisher can reuse it.

Every rejection is a :class:`ProtocolError` carrying the SPEC's error code and,
where the SPEC defines one, the place: ``pos`` (a byte offset in a header) or
``path`` (a JSON pointer into a decoded value).
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Union
from urllib.parse import quote

__all__ = [
    "PROTOCOL_VERSION",
    "ProtocolError",
    "value_string",
    "decode_invalidation",
    "decode_header",
    "encode_header",
    "canonical_key",
    "bucket",
    "slot",
    "shard",
    "matches",
    "decode_frame",
    "decode_envelope",
    "encode_envelope",
]

PROTOCOL_VERSION = 1

# SPEC section 14.
MAX_NAME_BYTES = 128
MAX_PARAM_NAME_BYTES = 64
MAX_VALUE_BYTES = 256
MAX_PARAMS = 16
MAX_ENTRIES = 256
MAX_HEADER_BYTES = 8192
MAX_ID_BYTES = 64
MAX_TOKEN_BYTES = 8192
MAX_SINCE_BYTES = 128
MAX_DEPTH = 64
MAX_CLOSE_REASON_BYTES = 123
BUCKETS = 1024
SLOTS = 16384

#: A normalized invalidation entry: a context name (unscoped) or
#: ``{"context": NAME, "params": {NAME: STRING, ...}}`` (scoped).
Entry = Union[str, dict]


class ProtocolError(ValueError):
    """Input that breaks the SPEC.

    ``code`` is the SPEC's lower-case error code (``bad_header``,
    ``bad_param``, ...). ``pos`` is the 0-based byte offset in a header value
    where the offending token starts; ``path`` is a JSON pointer
    (``/1/params/user_id``; ``""`` is the whole value). Both are ``None``
    where they do not apply.
    """

    def __init__(self, code: str, message: str, *, pos: int | None = None,
                 path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.pos = pos
        self.path = path

    def __str__(self) -> str:
        where = ""
        if self.pos is not None:
            where = f" at byte {self.pos}"
        elif self.path:
            where = f" at {self.path}"
        elif self.path is not None:
            where = " at the top level"
        return f"{self.code}{where}: {self.message}"

    def __repr__(self) -> str:
        return (f"ProtocolError({self.code!r}, {self.message!r}, "
                f"pos={self.pos!r}, path={self.path!r})")


def _pointer(path: str, key: str | int) -> str:
    """``path`` extended by one JSON-pointer step (``~`` and ``/`` escaped)."""
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


MAX_SAFE_INTEGER = 2**53 - 1


def _integer(value: object) -> int | None:
    """``value`` as a protocol *integer* (SPEC section 7), or ``None``.

    An integer is a JSON number with an integral value and a magnitude of at
    most 2**53 - 1. JavaScript has only doubles, so ``1.0`` arrives there as
    ``1`` and must be the integer 1 here too (Python's json reads it as a
    float); beyond 2**53 - 1 a double no longer holds every integer, so the
    browser and the hub could disagree about which one was meant. ``bool``
    is an ``int`` subclass in Python, and not a JSON number.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        return None
    return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else None


def _is_number(value: object) -> bool:
    """A JSON number (not a ``bool``, not NaN or an infinity)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int)


def _utf8_len(text: str) -> int | None:
    """Length in UTF-8 bytes, or ``None`` when ``text`` holds a lone surrogate
    (which is not a Unicode scalar value and has no UTF-8 form)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


# --------------------------------------------------------------------------
# Section 1: names and the string form of param values
# --------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _name_problem(name: object, limit: int) -> str | None:
    """Why ``name`` is not a valid name of at most ``limit`` bytes, or None."""
    if not isinstance(name, str):
        return "a name must be a string"
    size = _utf8_len(name)
    if size is None:
        return "a name must be Unicode scalar values (found a lone surrogate)"
    if not 1 <= size <= limit:
        return f"a name is 1 to {limit} bytes of UTF-8, this one is {size}"
    if _CONTROL.search(name):
        return "a name must not contain control characters"
    return None


def _value_problem(text: str) -> str | None:
    """Why a string form is not allowed as a param value, or None."""
    size = _utf8_len(text)
    if size is None:
        return "a value must be Unicode scalar values (found a lone surrogate)"
    if size > MAX_VALUE_BYTES:
        return f"a value is at most {MAX_VALUE_BYTES} bytes of UTF-8, this one is {size}"
    if "\x00" in text:
        return "a value must not contain U+0000"
    return None


def _number_string(x: float) -> str:
    """ECMAScript ``Number::toString(x)`` for a finite double.

    The ECMAScript algorithm picks the shortest digit string that reads back
    as ``x`` (the closest one on ties), which is exactly what ``repr`` gives;
    only the layout differs (``1e-07`` vs ``1e-7``, ``5.0`` vs ``5``,
    ``1e+16`` vs ``10000000000000000``), so take repr's digits and lay them
    out by the ECMAScript rules.
    """
    if x == 0:
        return "0"  # -0 too
    if x < 0:
        return "-" + _number_string(-x)
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    n = len(whole) + int(exponent or 0)  # x = 0.<digits> * 10**n
    significant = digits.lstrip("0")
    n -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    head = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def _string_form(value: object, path: str) -> str:
    """The string form of a param value (SPEC section 1); ``path`` is where
    the value sits, for the error."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "null"
    elif isinstance(value, bool):  # before int: True is an int in Python
        text = "true" if value else "false"
    elif isinstance(value, int):
        # JSON numbers are doubles to JavaScript, so a big integer is first
        # rounded to the nearest double (2**53 + 1 -> "9007199254740992").
        n = int(value)
        if -(2**53) <= n <= 2**53:
            text = str(n)
        else:
            try:
                text = _number_string(float(n))
            except OverflowError:
                raise ProtocolError("bad_param", "the number overflows a double",
                                    path=path) from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError("bad_param", "NaN and infinities are not JSON numbers",
                                path=path)
        text = _number_string(float(value))
    elif isinstance(value, (Mapping, list, tuple)):
        raise ProtocolError("bad_param", "a param value must not be an object or array",
                            path=path)
    else:
        raise ProtocolError("bad_param",
                            f"a param value must be a JSON scalar, not {type(value).__name__}",
                            path=path)
    problem = _value_problem(text)
    if problem:
        raise ProtocolError("bad_param", problem, path=path)
    return text


def value_string(value: object) -> str:
    """The string form of one param value: how it compares and how it is keyed.

    Params travel as query strings too, so ``5``, ``5.0`` and ``"5"`` must be
    the same value everywhere: strings stay as they are, ``True``/``False``/
    ``None`` become ``"true"``/``"false"``/``"null"``, numbers are written as
    JavaScript's ``String(n)`` writes them. Objects and arrays, strings over
    256 bytes and strings containing U+0000 raise ``bad_param`` (path ``""``).
    """
    return _string_form(value, "")


def _normalize_params(params: object, path: str, shape_code: str) -> dict[str, str]:
    """Params (SPEC section 1) as ``{name: string form}``, in input order.

    ``shape_code`` is the error for params that are not an object at all: it
    is ``bad_invalidation`` in an invalidation list, ``bad_frame`` in a frame.
    """
    if not isinstance(params, Mapping):
        raise ProtocolError(shape_code, "params must be an object", path=path)
    if len(params) > MAX_PARAMS:
        raise ProtocolError("too_large", f"at most {MAX_PARAMS} params, got {len(params)}",
                            path=path)
    forms: dict[str, str] = {}
    # SPEC 1: checked in canonical order, so the first bad param reported is
    # the same whatever order the object's keys came in; returned in the
    # object's own order.
    for name in sorted(params, key=_name_bytes):
        value = params[name]
        where = _pointer(path, name)
        problem = _name_problem(name, MAX_PARAM_NAME_BYTES)
        if problem:
            raise ProtocolError("bad_name", problem, path=where)
        forms[name] = _string_form(value, where)
    return {name: forms[name] for name in params}


def _name_bytes(name: object) -> bytes:
    """Sort key of a param name: its UTF-8 bytes (a lone surrogate, which
    only a Python caller can pass, sorts by its own three bytes)."""
    return name.encode("utf-8", "surrogatepass") if isinstance(name, str) else b""


def _check_name(name: object, path: str, code: str = "bad_name",
                limit: int = MAX_NAME_BYTES) -> str:
    """``name`` if it is a valid name, else ``code`` at ``path``."""
    problem = _name_problem(name, limit)
    if problem:
        raise ProtocolError(code, problem, path=path)
    return name  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Section 2: invalidation lists
# --------------------------------------------------------------------------

def _normalize_entry(entry: object, path: str) -> Entry:
    if isinstance(entry, str):
        return _check_name(entry, path)
    if not isinstance(entry, Mapping):
        raise ProtocolError("bad_invalidation",
                            "an entry is a context name or {\"context\", \"params\"}",
                            path=path)
    context = entry.get("context")
    if not isinstance(context, str):
        raise ProtocolError("bad_invalidation", "an entry object needs a string context",
                            path=path + "/context")
    _check_name(context, path + "/context")
    params = entry["params"] if "params" in entry else {}
    return {"context": context,
            "params": _normalize_params(params, path + "/params", "bad_invalidation")}


def decode_invalidation(value: object) -> list[Entry]:
    """The normalized form of an invalidation list (SPEC section 2).

    Order and duplicates are kept; unscoped entries stay strings; scoped ones
    become ``{"context", "params"}`` with string values -- ``{}`` params
    included, which stays a scoped entry rather than collapsing into the
    string. Errors carry the JSON pointer of the offending place.
    """
    if not isinstance(value, (list, tuple)):
        raise ProtocolError("bad_invalidation", "an invalidation list is an array", path="")
    if len(value) > MAX_ENTRIES:
        raise ProtocolError("too_large", f"at most {MAX_ENTRIES} entries, got {len(value)}",
                            path="")
    return [_normalize_entry(entry, f"/{i}") for i, entry in enumerate(value)]


def _entry_context(entry: Entry) -> str:
    return entry if isinstance(entry, str) else entry["context"]


# --------------------------------------------------------------------------
# Section 3: canonical keys
# --------------------------------------------------------------------------

def _canonical_items(params: dict[str, str]) -> list[tuple[str, str]]:
    """Params sorted by the UTF-8 bytes of their names.

    For valid Unicode this equals code-point order, which is what ``sorted``
    on ``str`` does; sorting on the bytes says what the SPEC means and keeps
    clear of UTF-16 order (JavaScript) and locale order.
    """
    return sorted(params.items(), key=lambda item: item[0].encode("utf-8"))


def _json_string(text: str) -> str:
    """A JSON string literal as the SPEC writes it: only ``"``, ``\\`` and
    controls escaped, short forms where JSON has them, lowercase ``\\u00xx``
    otherwise, everything else raw. ``ensure_ascii=False`` matters: the
    default would write ``\\u00e9`` and change the key and its bucket."""
    return json.dumps(text, ensure_ascii=False)


def _key_text(context: str, params: dict[str, str]) -> str:
    members = ",".join(f"{_json_string(k)}:{_json_string(v)}"
                       for k, v in _canonical_items(params))
    return f"[{_json_string(context)},{{{members}}}]"


class _Absent:
    """The default of an optional ``params`` argument: absent is ``{}``, while
    an explicit ``None`` is JSON's ``null`` -- not an object, so refused."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def _scope_params(context: object, params: object, path: str) -> dict[str, str]:
    """The normalized params of a (context, params) scope at ``path``
    (SPEC 2's rules for a scoped entry: the context first, then params)."""
    if not isinstance(context, str):
        raise ProtocolError("bad_invalidation", "a scope needs a string context",
                            path=path + "/context")
    _check_name(context, path + "/context")
    return _normalize_params({} if params is _ABSENT else params, path + "/params",
                             "bad_invalidation")


def canonical_key(context: str, params: Mapping[str, Any] | None = _ABSENT) -> str:
    """The canonical key of (context, params): one subscription scope as text.

    ``["user",{"user_id":"5"}]`` -- compact JSON, params in UTF-8 byte order,
    values in their string form, non-ASCII raw. It names Redis keys and picks
    version buckets, so every implementation must produce the same bytes.
    Errors carry paths ``/context`` and ``/params/NAME``; ``params`` left out
    is ``{}``, ``params=None`` is JSON's ``null`` and ``bad_invalidation``.
    """
    return _key_text(context, _scope_params(context, params, ""))


def bucket(key: str | bytes) -> int:
    """The version bucket of a canonical key: FNV-1a (32 bit) of its UTF-8
    bytes, mod 1024. Buckets keep the per-context version hash bounded
    (SPEC section 10)."""
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h % BUCKETS


def slot(key: str | bytes) -> int:
    """The slot of a shard key (SPEC section 11.1): CRC16-XMODEM of its UTF-8
    bytes (Redis Cluster's key-slot CRC; ``binascii.crc_hqx`` with 0 is that
    CRC), mod 16384."""
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    return binascii.crc_hqx(data, 0) % SLOTS


def shard(key: str | bytes, shards: int) -> int:
    """Which of ``shards`` Redis shards owns a shard key (SPEC section 11.1):
    a context's name, a channel instance's canonical key, a connection id.
    Slots are split in even ranges: ``slot * shards // 16384``."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    return slot(key) * shards // SLOTS


# --------------------------------------------------------------------------
# Section 4: matching
# --------------------------------------------------------------------------

def matches(entry: object, context: str, params: Mapping[str, Any] | None = _ABSENT) -> bool:
    """Whether an invalidation entry reaches a subscription (context, params).

    Same context, and every param the entry names is in the subscription with
    the same string value (AND, like the edge purge); an unscoped entry or a
    scoped one with ``{}`` params matches every subscription of its context.
    Both sides are normalized first, so ``5`` matches ``"5"``. Errors carry
    paths under ``/entry`` and ``/subscription``.
    """
    normalized = _normalize_entry(entry, "/entry")
    subscription = _scope_params(context, params, "/subscription")
    if isinstance(normalized, str):
        return normalized == context
    if normalized["context"] != context:
        return False
    return all(subscription.get(name) == value
               for name, value in normalized["params"].items())


# --------------------------------------------------------------------------
# Section 5: the X-Mizan-Invalidate header
# --------------------------------------------------------------------------

_OWS = b" \t"
_HEX = frozenset(b"0123456789abcdefABCDEF")
# tchar: visible ASCII except "%" (starts an escape) and the separators.
_TCHAR = frozenset(range(0x21, 0x7F)) - frozenset(b"%,;=")


class _HeaderReader:
    """A cursor over a header value's bytes; every error names its offset."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def error(self, code: str, message: str, pos: int | None = None) -> ProtocolError:
        return ProtocolError(code, message, pos=self.i if pos is None else pos)

    def peek(self) -> int | None:
        return self.data[self.i] if self.i < len(self.data) else None

    def skip_ows(self) -> None:
        while self.i < len(self.data) and self.data[self.i] in _OWS:
            self.i += 1

    def token(self, allow_empty: bool = False) -> tuple[bytes, int]:
        """The percent-decoded bytes of a run of tchars, and where it starts."""
        start = self.i
        data = self.data
        out = bytearray()
        while self.i < len(data):
            byte = data[self.i]
            if byte == 0x25:  # "%"
                if (self.i + 2 >= len(data) or data[self.i + 1] not in _HEX
                        or data[self.i + 2] not in _HEX):
                    raise self.error("bad_header", "\"%\" must be followed by two hex digits")
                out.append(int(data[self.i + 1:self.i + 3], 16))
                self.i += 3
            elif byte in _TCHAR:
                out.append(byte)
                self.i += 1
            else:
                break
        if self.i == start and not allow_empty:
            raise self.error("bad_header", "a name is expected here")
        return bytes(out), start

    def name(self, limit: int) -> tuple[str, int]:
        raw, start = self.token()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("bad_name", "a name must be valid UTF-8", start) from None
        problem = _name_problem(text, limit)
        if problem:
            raise self.error("bad_name", problem, start)
        return text, start

    def value(self) -> str:
        raw, start = self.token(allow_empty=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("bad_param", "a value must be valid UTF-8", start) from None
        problem = _value_problem(text)
        if problem:
            raise self.error("bad_param", problem, start)
        return text

    def element(self) -> Entry:
        """``name [ OWS ";" [ OWS param *( OWS ";" OWS param ) ] ]``."""
        context, _ = self.name(MAX_NAME_BYTES)
        self.skip_ows()
        if self.peek() != 0x3B:  # ";"
            return context
        self.i += 1
        self.skip_ows()
        params: dict[str, str] = {}
        if self.peek() in (None, 0x2C):  # "name;" alone: scoped, no params
            return {"context": context, "params": params}
        while True:
            name, start = self.name(MAX_PARAM_NAME_BYTES)
            if name in params:
                raise self.error("bad_header", f"param {name!r} given twice", start)
            if len(params) == MAX_PARAMS:
                raise self.error("too_large", f"at most {MAX_PARAMS} params", start)
            self.skip_ows()
            if self.peek() != 0x3D:  # "="
                raise self.error("bad_header", "\"=\" expected after a param name")
            self.i += 1
            self.skip_ows()
            params[name] = self.value()
            self.skip_ows()
            if self.peek() != 0x3B:
                return {"context": context, "params": params}
            self.i += 1
            self.skip_ows()


def decode_header(value: str | bytes) -> list[Entry]:
    """Parse an ``X-Mizan-Invalidate`` value into the normalized list.

    ``notifications, user;user_id=5, feed;`` -> ``["notifications",
    {"context": "user", "params": {"user_id": "5"}}, {"context": "feed",
    "params": {}}]``. Empty elements are skipped (HTTP's list rule); names
    and values are percent-decoded and must then be strict UTF-8. Errors
    carry ``pos``, the byte offset where the offending token starts. Pass
    the raw bytes when you have them: a ``str`` is measured in UTF-8 bytes.
    """
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"the header is at most {MAX_HEADER_BYTES} bytes",
                            pos=MAX_HEADER_BYTES)
    reader = _HeaderReader(data)
    entries: list[Entry] = []
    reader.skip_ows()
    while reader.peek() is not None:
        if reader.peek() == 0x2C:  # ",": an empty element
            reader.i += 1
            reader.skip_ows()
            continue
        if len(entries) == MAX_ENTRIES:
            raise reader.error("too_large", f"at most {MAX_ENTRIES} entries")
        entries.append(reader.element())
        reader.skip_ows()
        if reader.peek() not in (None, 0x2C):
            raise reader.error("bad_header", "\",\" or the end of the header expected")
    return entries


def _pct(text: str) -> str:
    """Percent-encode every UTF-8 byte except ``A-Z a-z 0-9 - . _ ~``, with
    uppercase hex: one spelling per value, so encoders agree byte for byte."""
    return quote(text, safe="")


def encode_header(entries: object) -> str:
    """The ``X-Mizan-Invalidate`` value of an invalidation list.

    The list is normalized first (so its errors are those of
    :func:`decode_invalidation`, with paths); elements are joined by ``", "``,
    params come in canonical order, and a scoped entry without params is
    written ``name;`` so that it survives the round trip as a scoped entry.
    A result over 8192 bytes raises ``too_large``: no decoder would take it.
    """
    parts = []
    for entry in decode_invalidation(entries):
        if isinstance(entry, str):
            parts.append(_pct(entry))
        else:
            params = ";".join(f"{_pct(k)}={_pct(v)}"
                              for k, v in _canonical_items(entry["params"]))
            parts.append(f"{_pct(entry['context'])};{params}")
    header = ", ".join(parts)
    if len(header) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large",
                            f"the header would be {len(header)} bytes, "
                            f"at most {MAX_HEADER_BYTES} are allowed", path="")
    return header


# --------------------------------------------------------------------------
# Section 1's JSON rules, for frames and envelopes
# --------------------------------------------------------------------------

def _bad_json(message: str) -> ProtocolError:
    return ProtocolError("bad_json", message)


def _parse_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _bad_json(f"the number {text[:40]} overflows a double")
    return number


def _parse_int(text: str) -> int | float:
    # float() first: it is cheap on any length, while int() refuses more
    # than 4300 digits with a ValueError of its own.
    number = float(text)
    if math.isinf(number):
        raise _bad_json(f"the number {text[:40]}... overflows a double")
    # A JSON number is a double (SPEC 1): beyond 2**53 an integer is what
    # JavaScript and the hub read, the nearest double, not the digits.
    value = int(text)
    return value if -(2**53) <= value <= 2**53 else number


def _parse_constant(name: str) -> Any:
    raise _bad_json(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_int=_parse_int,
                            parse_constant=_parse_constant)
# A string literal (the closing quote optional, so that an unterminated one
# is consumed to the end in one linear pass instead of retried from every
# later quote), or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _first_deep_bracket(text: str) -> int | None:
    """Offset of the bracket that opens the 65th level, or None.

    One linear scan before parsing, so that deep input never meets the
    parser's recursion limit.
    """
    depth = 0
    for m in _TOKEN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif c in "]}":
            depth -= 1
    return None


def _first_lone_surrogate(text: str) -> int | None:
    """Offset of the first escaped lone surrogate in a string literal, or None.

    Checked on the text, not the parsed value: a string that a later
    duplicate key overwrites is gone from the value but was in the text.
    """
    for lit in _TOKEN.finditer(text):
        if lit.group()[0] != '"' or "\\" not in lit.group():
            continue
        pending = None  # offset of a high surrogate escape awaiting its low half
        pending_end = -1
        for esc in _ESCAPE.finditer(lit.group()):
            unit = int(esc.group(1), 16) if esc.group(1) else -1
            at = lit.start() + esc.start()
            if pending is not None:
                if 0xDC00 <= unit <= 0xDFFF and esc.start() == pending_end:
                    pending = None
                    continue
                return pending
            if 0xD800 <= unit <= 0xDBFF:
                pending, pending_end = at, esc.end()
            elif 0xDC00 <= unit <= 0xDFFF:
                return at
        if pending is not None:
            return pending
    return None


def _check_tree(value: object, path: str = "", depth: int = 1) -> None:
    """Refuse what section 1 says JSON text cannot carry.

    Python's own json reads ``"\\ud800"`` into a lone surrogate and writes
    NaN; neither is JSON to the hub. Also refuses nesting deeper than
    MAX_DEPTH (the outer value is level 1) and, for values about to be
    encoded, anything that is not a JSON type.
    """
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ProtocolError("bad_json", "a string holds a lone surrogate", path=path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError("bad_json", "NaN and infinities are not JSON", path=path)
    elif value is None or isinstance(value, int):
        pass
    elif isinstance(value, (Mapping, list, tuple)):
        if depth > MAX_DEPTH:
            raise ProtocolError("too_large", f"nested deeper than {MAX_DEPTH} levels",
                                path=path)
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ProtocolError("bad_json", "object keys must be strings", path=path)
                where = _pointer(path, key)
                if _SURROGATE.search(key):
                    raise ProtocolError("bad_json", "a key holds a lone surrogate", path=where)
                _check_tree(item, where, depth + 1)
        else:
            for i, item in enumerate(value):
                _check_tree(item, _pointer(path, i), depth + 1)
    else:
        raise ProtocolError("bad_json", f"{type(value).__name__} is not a JSON type",
                            path=path)


def _parse_json(text: str | bytes) -> Any:
    """Parse one JSON text by section 1's rules: strict UTF-8, no lone
    surrogates, no NaN/Infinity literals, no number that overflows a double
    (``bad_json``); nesting over 64 levels is ``too_large``. Duplicate keys:
    the last wins. Of several problems, the one nearest the start of the
    text is reported (SPEC 1), as a parser reading front to back finds it."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad_json(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    deep = _first_deep_bracket(text)
    lone = _first_lone_surrogate(text)
    if lone is not None and (deep is None or lone < deep):
        raise _bad_json(f"an escaped lone surrogate (character {lone})")
    try:
        # Up to and including the deep bracket: an error before it wins, and
        # the bracket itself may sit where no value belongs.
        value = _DECODER.decode(text if deep is None else text[:deep + 1])
    except json.JSONDecodeError as exc:
        if deep is not None and exc.pos > deep:
            raise ProtocolError("too_large", f"nested deeper than {MAX_DEPTH} levels") from None
        raise _bad_json(f"{exc.msg} (character {exc.pos})") from None
    if deep is not None:  # not reached: text cut after an opening bracket never parses
        raise ProtocolError("too_large", f"nested deeper than {MAX_DEPTH} levels")
    _check_tree(value)
    return value


# --------------------------------------------------------------------------
# Section 7: browser -> hub frames
# --------------------------------------------------------------------------

def _frame_error(code: str, message: str, path: str = "") -> ProtocolError:
    return ProtocolError(code, message, path=path)


def _frame_id(value: object, path: str) -> str | int:
    """``ref`` / rpc ``id``: a string of 1 to 64 bytes, or an integer
    (``1.0`` normalized to ``1``)."""
    number = _integer(value)
    if number is not None:
        return number
    if isinstance(value, str) and 1 <= len(value.encode("utf-8")) <= MAX_ID_BYTES:
        return value
    raise _frame_error("bad_frame",
                       f"must be a string of 1 to {MAX_ID_BYTES} bytes or an integer", path)


def _frame_name(frame: dict, field: str) -> str:
    if field not in frame:
        raise _frame_error("bad_frame", f"{field} is required", "/" + field)
    if not isinstance(frame[field], str):
        raise _frame_error("bad_frame", f"{field} must be a string", "/" + field)
    return _check_name(frame[field], "/" + field)


def _frame_params(frame: dict) -> dict[str, str]:
    return _normalize_params(frame.get("params", {}), "/params", "bad_frame")


def _frame_string(frame: dict, field: str, limit: int, *, non_empty: bool) -> str:
    value = frame[field]
    if not isinstance(value, str) or (non_empty and not value):
        raise _frame_error("bad_frame", f"{field} must be a non-empty string"
                           if non_empty else f"{field} must be a string", "/" + field)
    if len(value.encode("utf-8")) > limit:
        raise _frame_error("too_large", f"{field} is at most {limit} bytes", "/" + field)
    return value


def _frame_target(frame: dict) -> dict:
    """``subscribe``/``unsubscribe`` name exactly one of context or channel."""
    if ("context" in frame) == ("channel" in frame):
        raise _frame_error("bad_frame", "exactly one of context or channel is required")
    field = "context" if "context" in frame else "channel"
    return {field: _frame_name(frame, field), "params": _frame_params(frame)}


def _frame_auth(frame: dict) -> dict:
    if "token" not in frame:
        raise _frame_error("bad_frame", "token is required", "/token")
    return {"token": _frame_string(frame, "token", MAX_TOKEN_BYTES, non_empty=True)}


def _frame_subscribe(frame: dict) -> dict:
    out = _frame_target(frame)
    if "since" in frame:
        out["since"] = _frame_string(frame, "since", MAX_SINCE_BYTES, non_empty=False)
    if "token" in frame:
        out["token"] = _frame_string(frame, "token", MAX_TOKEN_BYTES, non_empty=True)
    return out


def _frame_message(frame: dict) -> dict:
    return {"channel": _frame_name(frame, "channel"), "params": _frame_params(frame),
            "data": frame.get("data")}


def _frame_rpc(frame: dict) -> dict:
    if "id" not in frame:
        raise _frame_error("bad_frame", "id is required", "/id")
    out = {"id": _frame_id(frame["id"], "/id"), "fn": _frame_name(frame, "fn")}
    args = frame.get("args", {})
    if not isinstance(args, (dict, list)):
        raise _frame_error("bad_frame", "args must be an object or an array", "/args")
    return {**out, "args": args}


def _frame_ctx(frame: dict) -> dict:
    if "id" not in frame:
        raise _frame_error("bad_frame", "id is required", "/id")
    return {"id": _frame_id(frame["id"], "/id"), "context": _frame_name(frame, "context"),
            "params": _frame_params(frame)}


def _frame_ping(frame: dict) -> dict:
    return {}


def _frame_presence(frame: dict) -> dict:
    return {"channel": _frame_name(frame, "channel"), "params": _frame_params(frame)}


_ACTIONS = {
    "auth": _frame_auth,
    "refresh": _frame_auth,
    "subscribe": _frame_subscribe,
    "unsubscribe": _frame_target,
    "message": _frame_message,
    "rpc": _frame_rpc,
    "ctx": _frame_ctx,
    "ping": _frame_ping,
    "presence": _frame_presence,
}


def decode_frame(text: str | bytes) -> dict:
    """Decode and normalize one browser frame (SPEC section 7).

    The result holds ``action``, that action's fields with their defaults
    (``params`` ``{}``, ``data`` ``None``, ``args`` ``{}``), param values in
    string form, and ``ref`` when given; unknown keys are dropped. The Django
    worker reads these frames from the inbound stream, where the hub has
    already normalized them; decoding again keeps the worker honest.
    """
    frame = _parse_json(text)
    if not isinstance(frame, dict):
        raise _frame_error("bad_frame", "a frame is a JSON object")
    action = frame.get("action")
    if not isinstance(action, str):
        raise _frame_error("bad_frame", "action must be a string", "/action")
    handler = _ACTIONS.get(action)
    if handler is None:
        raise _frame_error("unknown_action", f"unknown action {action[:64]!r}", "/action")
    ref = _frame_id(frame["ref"], "/ref") if "ref" in frame else None
    out = {"action": action, **handler(frame)}
    if "ref" in frame:
        out["ref"] = ref
    return out


# --------------------------------------------------------------------------
# Section 11: envelopes on mizan:events and mizan:hub:{id}
# --------------------------------------------------------------------------

_VERSION = re.compile(r"[0-9a-z]{1,32}:(?:0|[1-9][0-9]{0,15})")
_EPOCH = re.compile(r"[0-9a-z]{1,32}")
_SESSION = re.compile(r"[0-9a-f]{64}")


def _bad_envelope(message: str, path: str = "") -> ProtocolError:
    return ProtocolError("bad_envelope", message, path=path)


def _env_required(env: Mapping, field: str) -> Any:
    if field not in env:
        raise _bad_envelope(f"{field} is required", "/" + field)
    return env[field]


#: Byte limits of the envelope's string fields (SPEC section 11).
_ENV_STRING_LIMITS = {"conn": 128, "sub": 256, "hub": 64, "nonce": 64, "version": 64,
                      "secret": 32, "body": 1 << 20}
_SECRET = re.compile(r"[0-9a-f]{32}")


def _env_string(env: Mapping, field: str) -> str:
    value = _env_required(env, field)
    limit = _ENV_STRING_LIMITS[field]
    if not isinstance(value, str) or not 1 <= len(value.encode("utf-8", "surrogatepass")) <= limit:
        raise _bad_envelope(f"{field} must be a string of 1 to {limit} bytes", "/" + field)
    if "\x00" in value:
        raise _bad_envelope(f"{field} contains U+0000", "/" + field)
    return value


def _env_invalidate(env: Mapping) -> dict:
    try:
        entries = decode_invalidation(_env_required(env, "invalidate"))
    except ProtocolError as exc:
        raise _bad_envelope(f"{exc.code}: {exc.message}",
                            "/invalidate" + (exc.path or "")) from None
    if not entries:
        raise _bad_envelope("the invalidation list must not be empty", "/invalidate")
    versions = _env_required(env, "versions")
    if not isinstance(versions, Mapping):
        raise _bad_envelope("versions must be an object", "/versions")
    for context, version in versions.items():
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise _bad_envelope("a version is \"epoch:counter\"",
                                _pointer("/versions", context))
    for entry in entries:
        if _entry_context(entry) not in versions:
            raise _bad_envelope(f"no version for context {_entry_context(entry)!r}",
                                "/versions")
    return {"invalidate": entries, "versions": dict(versions)}


def _env_channel(env: Mapping) -> tuple[str, dict[str, str]]:
    """``channel`` and ``params`` of a message or presence envelope."""
    channel = _check_name(_env_required(env, "channel"), "/channel", "bad_envelope")
    try:
        params = _normalize_params(env.get("params", {}), "/params", "bad_envelope")
    except ProtocolError as exc:
        raise _bad_envelope(f"{exc.code}: {exc.message}", exc.path or "/params") from None
    return channel, params


#: A presence member's ``info``, written compactly, is at most this many bytes (SPEC 11.2).
MAX_INFO_BYTES = 1024


def compact_json(value: Any) -> str:
    """``value`` as the hub and ``JSON.stringify`` write it: compact, strings
    as section 3 escapes them, numbers in ECMAScript form (``1.0`` is ``1``),
    so a byte limit on it means the same in the three languages."""
    if isinstance(value, str):
        return _json_string(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_json_string(k)}:{compact_json(v)}"
                              for k, v in value.items()) + "}"
    return "[" + ",".join(compact_json(v) for v in value) + "]"


def _env_presence(env: Mapping) -> dict:
    op = env.get("op")
    if op not in ("join", "leave"):
        raise _bad_envelope('op must be "join" or "leave"', "/op")
    channel, params = _env_channel(env)
    member = _env_required(env, "member")
    if not isinstance(member, Mapping):
        raise _bad_envelope("member must be an object", "/member")
    try:
        out = {"conn": _env_string(member, "conn"),
               "sub": None if member.get("sub", "") is None else _env_string(member, "sub")}
    except ProtocolError as exc:
        raise _bad_envelope(exc.message, "/member" + (exc.path or "")) from None
    if "info" in member:
        info = member["info"]
        if info is None or len(compact_json(info).encode("utf-8")) > MAX_INFO_BYTES:
            raise _bad_envelope(f"info is JSON other than null of at most {MAX_INFO_BYTES} bytes",
                                "/member/info")
        out["info"] = info
    return {"op": op, "channel": channel, "params": params, "member": out}


def _env_message(env: Mapping) -> dict:
    channel, params = _env_channel(env)
    kind = _check_name(env.get("type", "message"), "/type", "bad_envelope")
    seq = _integer(_env_required(env, "seq"))
    if seq is None or seq < 1:
        raise _bad_envelope("seq must be an integer >= 1", "/seq")
    epoch = _env_required(env, "epoch")
    if not isinstance(epoch, str) or not _EPOCH.fullmatch(epoch):
        raise _bad_envelope("epoch is 1 to 32 characters of [0-9a-z]", "/epoch")
    return {"channel": channel, "params": params, "type": kind,
            "data": env.get("data"), "seq": seq, "epoch": epoch}


def _env_logout(env: Mapping) -> dict:
    session = _env_required(env, "session")
    if not isinstance(session, str) or not _SESSION.fullmatch(session):
        raise _bad_envelope("session is the sha256 of the session key, 64 lowercase hex",
                            "/session")
    return {"session": session}


def _env_reason(env: Mapping) -> str:
    """``reason`` of ``disconnect`` and ``close``: optional, ``""`` by default,
    at most 123 bytes (what a WebSocket close frame can carry)."""
    reason = env.get("reason", "")
    if not isinstance(reason, str):
        raise _bad_envelope("reason must be a string", "/reason")
    if len(reason.encode("utf-8")) > MAX_CLOSE_REASON_BYTES:
        raise _bad_envelope(f"reason is at most {MAX_CLOSE_REASON_BYTES} bytes", "/reason")
    if "\x00" in reason:
        raise _bad_envelope("reason contains U+0000", "/reason")
    return reason


def _env_disconnect(env: Mapping) -> dict:
    return {"sub": _env_string(env, "sub"), "reason": _env_reason(env)}


def _env_canary(env: Mapping) -> dict:
    return {"hub": _env_string(env, "hub"), "nonce": _env_string(env, "nonce")}


def _env_registry(env: Mapping) -> dict:
    return {"version": _env_string(env, "version")}


def _env_frame(env: Mapping) -> Mapping:
    frame = _env_required(env, "frame")
    if not isinstance(frame, Mapping):
        raise _bad_envelope("frame must be an object", "/frame")
    return frame


def _env_reply(env: Mapping) -> dict:
    conn = _env_string(env, "conn")
    frame = _env_frame(env)
    try:
        _frame_id(frame.get("id"), "/frame/id")
    except ProtocolError as exc:
        raise _bad_envelope(f"a reply frame needs an id that {exc.message}",
                            "/frame/id") from None
    return {"conn": conn, "frame": frame}


def _env_send(env: Mapping) -> dict:
    return {"conn": _env_string(env, "conn"), "frame": _env_frame(env)}


def _env_close(env: Mapping) -> dict:
    conn = _env_string(env, "conn")
    code = _integer(_env_required(env, "code"))
    if code is None or not 4000 <= code <= 4999:
        raise _bad_envelope("code must be an integer from 4000 to 4999", "/code")
    return {"conn": conn, "code": code, "reason": _env_reason(env)}


def _env_post(env: Mapping) -> dict:
    """A stream's POST forwarded to the hub process holding the stream (SPEC 6.1)."""
    conn = _env_string(env, "conn")
    secret = _env_string(env, "secret")
    if not _SECRET.fullmatch(secret):
        raise _bad_envelope("secret must be 32 lowercase hex digits", "/secret")
    out = {"conn": conn, "secret": secret}
    if "n" in env:
        n = _integer(env["n"])
        if n is None or n < 1:
            raise _bad_envelope("n must be an integer >= 1", "/n")
        out["n"] = n
    out["body"] = _env_string(env, "body")
    return out


_KINDS = {
    "invalidate": _env_invalidate,
    "message": _env_message,
    "logout": _env_logout,
    "disconnect": _env_disconnect,
    "canary": _env_canary,
    "reply": _env_reply,
    "send": _env_send,
    "close": _env_close,
    "registry": _env_registry,
    "presence": _env_presence,
    "post": _env_post,
}


def _normalize_envelope(env: object) -> dict:
    if not isinstance(env, Mapping):
        raise _bad_envelope("an envelope is a JSON object")
    if _integer(env.get("v")) != PROTOCOL_VERSION:
        raise _bad_envelope(f"v must be {PROTOCOL_VERSION}", "/v")
    kind = env.get("kind")
    if not isinstance(kind, str):
        raise _bad_envelope("kind must be a string", "/kind")
    handler = _KINDS.get(kind)
    if handler is None:
        raise ProtocolError("unknown_kind", f"unknown envelope kind {kind[:64]!r}",
                            path="/kind")
    out: dict = {"v": PROTOCOL_VERSION, "kind": kind}
    if "ts" in env:
        ts = env["ts"]
        if not _is_number(ts) or ts < 0:
            raise _bad_envelope("ts must be a non-negative number (Unix ms)", "/ts")
        out["ts"] = ts  # fractions allowed: sub-millisecond latency metrics
    out.update(handler(env))
    return out


def decode_envelope(text: str | bytes) -> dict:
    """Decode and check one Redis envelope (SPEC section 11).

    Returns the known fields, normalized: the invalidation list in its
    normalized form, message defaults filled in (``params`` ``{}``, ``type``
    ``"message"``, ``data`` ``None``), ``ts`` kept when present; unknown
    fields are dropped. A broken envelope is ``bad_envelope`` (with the
    path of the offending field), a kind this version does not know is
    ``unknown_kind`` (newer publishers may add kinds).
    """
    return _normalize_envelope(_parse_json(text))


def encode_envelope(envelope: Mapping[str, Any]) -> str:
    """The JSON text of an envelope to publish, checked as the hub checks it.

    ``v`` defaults to 1. The envelope is normalized exactly as
    :func:`decode_envelope` does, so what Django publishes is what every hub
    accepts: compact JSON, non-ASCII as raw UTF-8. Raises the same errors,
    plus ``bad_json`` for values JSON cannot carry (NaN, lone surrogates,
    non-JSON types).
    """
    env = {"v": PROTOCOL_VERSION, **envelope}
    _check_tree(env)  # first: normalizing assumes what decoding guarantees
    return json.dumps(_normalize_envelope(env), ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False)
