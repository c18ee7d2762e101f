"""The Python pitfalls the protocol module steps around, pinned down.

Each test names a default of Python (or of JavaScript, which the other
implementations face) that would silently break agreement with the hub and
the browser client if the module relied on it.
"""

from __future__ import annotations

import json
import math
import random
import re
import struct
from pathlib import Path

import pytest

from mizan_hub import protocol
from mizan_hub.protocol import ProtocolError

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"

NAMES = ["b", "B", "a", "ab", "10", "9", "é", "z", "ｚ", "\ufffd", "\uffff",
         "😀", "🎉", "\U00010000", "\u0800", "\x7f", "日", "本", "中"]


def test_str_order_is_utf8_byte_order() -> None:
    """``sorted`` on str compares code points, which for Unicode scalar
    values is UTF-8 byte order, the order SPEC section 3 asks for."""
    assert sorted(NAMES) == sorted(NAMES, key=lambda s: s.encode("utf-8"))


def test_utf16_order_differs() -> None:
    """JavaScript's default sort compares UTF-16 code units and puts 😀
    (a surrogate pair, 0xD83D...) before U+FFFD; the canonical key must not."""
    utf16 = sorted(NAMES, key=lambda s: s.encode("utf-16-be"))
    assert utf16 != sorted(NAMES)
    assert utf16.index("😀") < utf16.index("\ufffd")
    key = protocol.canonical_key("x", {"😀": "2", "\ufffd": "1"})
    assert key.index("\ufffd") < key.index("😀")


def test_json_dumps_defaults_give_another_key() -> None:
    """``json.dumps`` escapes non-ASCII by default and puts spaces after
    separators: a different key, so a different bucket."""
    key = protocol.canonical_key("café", {"nom": "Zoë"})
    assert key == '["café",{"nom":"Zoë"}]'
    naive = json.dumps(["café", {"nom": "Zoë"}])
    assert naive == '["caf\\u00e9", {"nom": "Zo\\u00eb"}]'
    assert protocol.bucket(key) != protocol.bucket(naive)


def test_bool_is_not_a_number() -> None:
    """``True`` is an ``int`` in Python (``str(True + 0) == "1"``); its
    string form is "true", and it must not match "1"."""
    assert isinstance(True, int)
    assert protocol.value_string(True) == "true"
    assert protocol.value_string(False) == "false"
    assert protocol.value_string(1) == "1"
    assert not protocol.matches({"context": "f", "params": {"on": True}}, "f", {"on": 1})


def test_repr_is_not_number_tostring() -> None:
    """``repr``/``str`` of floats has the right digits in another layout."""
    cases = {5.0: "5", 1e-7: "1e-7", 1e16: "10000000000000000",
             1e20: "100000000000000000000", -0.0: "0", 2.5e-7: "2.5e-7",
             1e-6: "0.000001"}
    for number, expected in cases.items():
        assert repr(number) != expected
        assert protocol.value_string(number) == expected


_ECMASCRIPT_NUMBER = re.compile(
    r"-?(?:0|[1-9][0-9]*(?:\.[0-9]*[1-9])?|0\.0{0,5}[1-9][0-9]*"
    r"|[1-9](?:\.[0-9]*[1-9])?e[+-](?:0|[1-9][0-9]*))")


def test_number_strings_round_trip() -> None:
    """Over many random doubles, the string form reads back as the same
    double and has the shape ECMAScript writes (checked against node's
    String() over 200000 doubles when the module was written)."""
    rnd = random.Random(2024)
    for _ in range(20000):
        x = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
        if not math.isfinite(x):
            continue
        text = protocol.value_string(x)
        assert float(text) == x, (x, text)
        assert _ECMASCRIPT_NUMBER.fullmatch(text), (x, text)


def test_big_integers_round_like_javascript() -> None:
    """Python ints are exact; JSON numbers are doubles to JavaScript."""
    assert protocol.value_string(2**53 + 1) == "9007199254740992"
    assert protocol.value_string(10**21) == "1e+21"
    assert protocol.value_string(10**21 - 1) == "1e+21"
    with pytest.raises(ProtocolError) as info:
        protocol.value_string(10**400)
    assert info.value.code == "bad_param"


@pytest.mark.parametrize("text", [
    '{"action":"ping","ref":NaN}',
    '{"action":"ping","ref":Infinity}',
    '{"action":"ping","ref":-Infinity}',
    '{"action":"ping","ref":-1e400}',
    '{"action":"ping","ref":' + "9" * 400 + "}",
    '{"action":"ping","ref":' + "9" * 5000 + "}",
    '{"action":"ping","\\udc00":1}',
    '{"action":"ping","ref":"\ud800"}',
    '\ufeff{"action":"ping"}',
], ids=["NaN", "Infinity", "-Infinity", "-1e400", "400 digits", "5000 digits",
        "surrogate in key", "raw surrogate", "BOM"])
def test_python_json_leniency_is_bad_json(text: str) -> None:
    """Python's json reads all of these; SPEC section 1 says they are not JSON."""
    with pytest.raises(ProtocolError) as info:
        protocol.decode_frame(text)
    assert info.value.code == "bad_json"


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode_frame(b'{"action":"ping","ref":"\xff"}')
    assert info.value.code == "bad_json"
    with pytest.raises(ProtocolError) as info:  # json.loads would sniff UTF-16
        protocol.decode_frame('{"action":"ping"}'.encode("utf-16"))
    assert info.value.code == "bad_json"


def test_deep_nesting_is_too_large_not_recursion_error() -> None:
    """The parser would raise RecursionError near 1000 levels; the depth
    limit is checked by a scan first."""
    text = '{"action":"message","channel":"c","data":' + "[" * 100000 + "]" * 100000 + "}"
    with pytest.raises(ProtocolError) as info:
        protocol.decode_frame(text)
    assert info.value.code == "too_large"


def test_brackets_inside_strings_do_not_nest() -> None:
    data = "[" * 100 + '\\"{' * 50
    frame = protocol.decode_frame(json.dumps({"action": "message", "channel": "c",
                                              "data": data}))
    assert frame["data"] == data


def test_unterminated_string_is_linear() -> None:
    """A quote never closed, followed by many escaped quotes, must not make
    the nesting scan retry from every quote (quadratic time)."""
    with pytest.raises(ProtocolError) as info:
        protocol.decode_frame('{"action":"' + '\\"' * 200000)
    assert info.value.code == "bad_json"


def test_protocol_error_is_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        protocol.decode_header("a;b")
    err = info.value
    assert isinstance(err, ProtocolError)
    assert (err.code, err.pos, err.path) == ("bad_header", 3, None)
    assert str(err).startswith("bad_header at byte 3: ")


def test_encode_header_refuses_what_no_decoder_takes() -> None:
    entries = [{"context": "c", "params": {"k": "é" * 128}}] * 40
    with pytest.raises(ProtocolError) as info:
        protocol.encode_header(entries)
    assert info.value.code == "too_large"


def _envelope_cases():
    doc = json.loads((VECTORS / "envelope_decode.json").read_text(encoding="utf-8"))
    for case in doc["cases"]:
        if "expect" in case:
            yield pytest.param(case["expect"], id=case["name"])


@pytest.mark.parametrize("envelope", _envelope_cases())
def test_encode_envelope_round_trips(envelope: dict) -> None:
    """What Django publishes decodes, on every hub, to the same envelope."""
    text = protocol.encode_envelope(envelope)
    assert protocol.decode_envelope(text) == envelope
    assert protocol.decode_envelope(text.encode("utf-8")) == envelope


def test_encode_envelope_checks_like_the_hub() -> None:
    good = {"kind": "invalidate", "invalidate": [{"context": "user", "params": {"id": 5}}],
            "versions": {"user": "k2f9a:43"}}
    assert protocol.encode_envelope(good) == (
        '{"v":1,"kind":"invalidate","invalidate":[{"context":"user","params":{"id":"5"}}],'
        '"versions":{"user":"k2f9a:43"}}')
    bad = [
        ({**good, "versions": {}}, "bad_envelope"),
        ({**good, "kind": "telemetry"}, "unknown_kind"),
        ({"kind": "message", "channel": "c", "seq": 1, "epoch": "e", "data": math.nan},
         "bad_json"),
        ({"kind": "message", "channel": "c", "seq": 1, "epoch": "e", "data": "\udc00"},
         "bad_json"),
        ({"kind": "message", "channel": "c", "seq": 1, "epoch": "e", "data": object()},
         "bad_json"),
        ({"kind": "message", "channel": "c", "seq": True, "epoch": "e"}, "bad_envelope"),
        ({"kind": "close", "conn": "h.1", "code": 4005, "reason": "é" * 62},
         "bad_envelope"),
    ]
    for envelope, code in bad:
        with pytest.raises(ProtocolError) as info:
            protocol.encode_envelope(envelope)
        assert info.value.code == code, envelope


def test_header_limit_is_bytes_not_characters() -> None:
    """5000 characters, 10000 bytes: over the 8192-byte limit."""
    with pytest.raises(ProtocolError) as info:
        protocol.decode_header("é" * 5000)
    assert (info.value.code, info.value.pos) == ("too_large", 8192)


def test_version_pattern_is_anchored_at_the_very_end() -> None:
    """SPEC writes the version rule as ``^...$``; Python's ``$`` also
    matches before a final newline, so the check must be a full match."""
    envelope = {"kind": "invalidate", "invalidate": ["a"], "versions": {"a": "x:1\n"}}
    with pytest.raises(ProtocolError) as info:
        protocol.encode_envelope(envelope)
    assert (info.value.code, info.value.path) == ("bad_envelope", "/versions/a")


def test_integral_floats_are_integers_but_bools_are_not() -> None:
    """Python's json reads ``1.0`` as a float and ``true`` as an ``int``
    subclass; SPEC section 7's integer is neither of those Python types."""
    assert protocol.decode_frame('{"action":"ping","ref":1.0}')["ref"] == 1
    assert type(protocol.decode_frame('{"action":"ping","ref":1.0}')["ref"]) is int
    assert protocol.decode_frame('{"action":"ping","ref":-9007199254740991}')["ref"] < 0
    for ref in ("true", "1.5", "9007199254740992.0", "-9007199254740992"):
        with pytest.raises(ProtocolError) as info:
            protocol.decode_frame('{"action":"ping","ref":%s}' % ref)
        assert info.value.code == "bad_frame", ref
    env = protocol.decode_envelope('{"v":1.0,"kind":"close","conn":"h.1","code":4005.0}')
    assert env == {"v": 1, "kind": "close", "conn": "h.1", "code": 4005, "reason": ""}
    assert type(env["code"]) is int


def test_ts_is_a_number_not_a_bool() -> None:
    for ts in ("true", '"5"', "-0.5"):
        with pytest.raises(ProtocolError) as info:
            protocol.decode_envelope('{"v":1,"kind":"canary","hub":"h","nonce":"1","ts":%s}' % ts)
        assert (info.value.code, info.value.path) == ("bad_envelope", "/ts"), ts
