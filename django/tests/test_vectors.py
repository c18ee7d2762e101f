"""Every case of the shared vectors (``protocol/vectors/*.json``, SPEC section 15).

The C library and the TypeScript client run the same files; one pytest case
per vector case, named ``<kind>:<case name>``, so a failure names the case
the other implementations can be checked against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from mizan_hub import protocol
from mizan_hub.protocol import ProtocolError

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
VECTOR_FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _roundtrip(value: Any) -> dict:
    header = protocol.encode_header(value)
    return {"header": header, "json": protocol.decode_header(header)}


def _params(scope: dict) -> dict:
    """``params`` as a keyword when the scope has it: left out is ``{}``,
    while ``null`` is refused."""
    return {"params": scope["params"]} if "params" in scope else {}


def _canonical_key(value: Any) -> dict:
    key = protocol.canonical_key(value.get("context"), **_params(value))
    return {"key": key, "bucket": protocol.bucket(key)}


def _match(value: Any) -> bool:
    subscription = value["subscription"]
    return protocol.matches(value["entry"], subscription.get("context"),
                            **_params(subscription))


#: kind -> what turns a case's input into the value its ``expect`` holds.
RUNNERS: dict[str, Callable[[Any], Any]] = {
    "header_decode": protocol.decode_header,
    "header_encode": protocol.encode_header,
    "invalidation_decode": protocol.decode_invalidation,
    "roundtrip": _roundtrip,
    "canonical_key": _canonical_key,
    "match": _match,
    "frame_decode": protocol.decode_frame,
    "envelope_decode": protocol.decode_envelope,
    "value_string": protocol.value_string,
}

#: Kinds whose input is text that may also arrive as bytes (a header from
#: WSGI, a frame or an envelope from Redis): both must decode the same.
TEXT_KINDS = {"header_decode", "frame_decode", "envelope_decode"}

ERROR_FIELDS = {"code", "pos", "path"}


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values. Plain ``==`` is not it in Python: ``True == 1``
    and ``1 == 1.0`` there, while JSON keeps booleans and numbers apart."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return False


def _cases():
    for path in VECTOR_FILES:
        doc = _load(path)
        for case in doc["cases"]:
            yield pytest.param(doc["kind"], case, id=f"{doc['kind']}:{case['name']}")


def _check(run: Callable[[Any], Any], case: dict) -> None:
    if "error" in case:
        want = case["error"]
        assert set(want) <= ERROR_FIELDS, f"unknown error fields in the vector: {want}"
        with pytest.raises(ProtocolError) as info:
            run(case["input"])
        got = {field: getattr(info.value, field) for field in want}
        assert got == want, f"wrong error: {info.value!r}"
    else:
        got = run(case["input"])
        json.dumps(got, allow_nan=False)  # the result is a JSON value
        if not json_equal(got, case["expect"]):
            assert got == case["expect"]  # pytest shows the difference
            pytest.fail(f"equal to Python, not as JSON: {got!r} != {case['expect']!r}")


@pytest.mark.parametrize("kind, case", _cases())
def test_vector(kind: str, case: dict) -> None:
    assert kind in RUNNERS, f"no runner for vector kind {kind!r}"
    _check(RUNNERS[kind], case)
    if kind in TEXT_KINDS:
        try:
            raw = case["input"].encode("utf-8")
        except UnicodeEncodeError:
            return
        _check(lambda _: RUNNERS[kind](raw), case)


def test_vector_files_exist() -> None:
    assert VECTOR_FILES, f"no vector files in {VECTORS}"


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.name)
def test_vector_file_kind_is_known(path: Path) -> None:
    """A file of a kind this runner does not know must fail, not be skipped."""
    doc = _load(path)
    assert set(doc) == {"kind", "description", "cases"}, sorted(doc)
    assert doc["kind"] in RUNNERS, f"{path.name}: unknown vector kind {doc['kind']!r}"
    names = [case["name"] for case in doc["cases"]]
    assert len(names) == len(set(names)), f"{path.name}: duplicate case names"
    for case in doc["cases"]:
        assert set(case) in ({"name", "input", "expect"}, {"name", "input", "error"}), case


def test_every_runner_has_vectors() -> None:
    """The converse: a runner whose file went missing would test nothing."""
    kinds = {_load(path)["kind"] for path in VECTOR_FILES}
    assert set(RUNNERS) <= kinds, sorted(set(RUNNERS) - kinds)
