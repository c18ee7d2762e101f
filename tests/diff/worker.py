"""The Python side of the differential run (tests/diff/run): the codecs of
``django/mizan_hub/protocol.py`` (``mizan_hub`` imports nothing from Django
until asked, so no settings are needed), one request a line on stdin, one
answer a line on stdout, as tests/diff/worker.c."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django"))
from mizan_hub import protocol  # noqa: E402  (the checkout's, first on the path)


def _error(exc: protocol.ProtocolError, stage: str) -> dict:
    out: dict = {"err": exc.code}
    if exc.path is not None:
        out["path"] = exc.path
    if exc.pos is not None:
        out["pos"] = exc.pos
    out["stage"] = stage
    return out


def _json_op(op: str, text: str) -> dict:
    try:
        v = protocol._parse_json(text)
    except protocol.ProtocolError as exc:
        return _error(exc, "parse")
    try:
        if op == "key":
            if not isinstance(v, dict):
                return {"err": "bad_invalidation", "path": "", "stage": "api"}
            extra = {"params": v["params"]} if "params" in v else {}
            key = protocol.canonical_key(v.get("context"), **extra)
            return {"ok": {"key": key, "bucket": protocol.bucket(key)}}
        if op == "match":
            if not isinstance(v, dict):
                return {"err": "not_object", "stage": "worker"}
            sub = v.get("subscription")
            if not isinstance(sub, dict):
                # The Python API takes the subscription's context and params
                # apart, so an entry error must still come first.
                protocol.matches(v.get("entry"), "x", {})
                return {"err": "bad_invalidation", "path": "/subscription", "stage": "api"}
            extra = {"params": sub["params"]} if "params" in sub else {}
            return {"ok": protocol.matches(v.get("entry"), sub.get("context"), **extra)}
        if op == "inval":
            return {"ok": protocol.decode_invalidation(v)}
        if op == "henc":
            return {"ok": protocol.encode_header(v)}
        if op == "rt":
            header = protocol.encode_header(v)
            try:
                return {"ok": {"header": header, "json": protocol.decode_header(header)}}
            except protocol.ProtocolError as exc:
                return _error(exc, "decode")
    except protocol.ProtocolError as exc:
        return _error(exc, "api")
    return {"err": "unknown_op", "stage": "worker"}


def run(op: str, text: str) -> dict:
    if op in ("key", "match", "inval", "henc", "rt"):
        return _json_op(op, text)
    try:
        if op == "hdec":
            return {"ok": protocol.decode_header(text)}
        if op == "frame":
            return {"ok": protocol.decode_frame(text)}
        if op == "env":
            return {"ok": protocol.decode_envelope(text)}
        if op == "nums":
            return {"ok": [protocol.value_string(float(x)) for x in json.loads(text)]}
    except protocol.ProtocolError as exc:
        return _error(exc, "api")
    return {"err": "unknown_op", "stage": "worker"}


def main() -> None:
    for line in sys.stdin:
        try:
            req = json.loads(line)
            answer = run(req["op"], req["in"])
        except Exception:  # noqa: BLE001 -- a crash is a finding, reported
            answer = {"crash": traceback.format_exc(limit=3)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
