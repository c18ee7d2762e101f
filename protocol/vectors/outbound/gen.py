#!/usr/bin/env python3
"""Writes frames.json: every frame the hub encodes (protocol/src/mh_out.c),
as SPEC 8 and 11 describe it, built here independently of the C encoders
with Python's json (compact, non-ASCII raw, keys in SPEC order, params in
UTF-8 byte order with string values). tests/unit/test_out.c calls each C
encoder with a case's args and compares the bytes.

  gen.py           write frames.json
  gen.py --check   exit 1 when frames.json is not what this writes
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def dumps(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def params(p):
    """SPEC 3: names in UTF-8 byte order, values their string forms."""
    return {k: p[k] for k in sorted(p, key=lambda k: k.encode("utf-8"))}


def ident(subject, staff, sup):
    return None if subject is None else {"sub": subject, "staff": staff, "super": sup}


def target(channel, entry):
    return {("channel" if channel else "context"): entry["context"],
            "params": params(entry["params"])}


def welcome(a):
    return {"welcome": {"protocol": 1, "hub": a["hub"], "conn": a["conn"],
                        "identity": ident(a["subject"], a["staff"], a["super"]),
                        "expires": a["expires"] or None, "spread_ms": a["spread_ms"],
                        "max_frame": a["max_frame"]}}


def authed(a):
    out = {"identity": ident(a["subject"], a["staff"], a["super"]),
           "expires": a["expires"] or None}
    if a.get("ref") is not None:
        out["ref"] = a["ref"]
    return {"authed": out}


def expiring(a):
    return {"expiring": {"expires": a["expires"], "in": a["in"]}}


def ack(a):
    out = {("subscribed" if a["subscribed"] else "unsubscribed"): True}
    out.update(target(a["channel"], a["entry"]))
    if a["subscribed"] and not a["channel"] and a.get("version") is not None:
        out["version"] = a["version"]
    if a["subscribed"] and a["channel"] and a.get("epoch") is not None:
        out["epoch"] = a["epoch"]
        out["seq"] = a["seq"]
    if a.get("ref") is not None:
        out["ref"] = a["ref"]
    return out


def invalidate(a):
    e = a["entry"]
    entry = e["context"] if e.get("unscoped") else {"context": e["context"],
                                                      "params": params(e["params"])}
    out = {"invalidate": [entry]}
    if a.get("version") is not None:
        out["versions"] = {e["context"]: a["version"]}
    if a.get("reason") is not None:
        out["reason"] = a["reason"]
    if a.get("spread_ms", -1) >= 0:
        out["spread_ms"] = a["spread_ms"]
    if a.get("ts", 0) > 0:
        out["ts"] = a["ts"]
    return out


def error(a):
    out = {"error": {"code": a["code"], "message": a["message"]}}
    if a.get("ref") is not None:
        out["ref"] = a["ref"]
    if a.get("target"):
        out.update(target(a["target"] == 2, a["entry"]))
    return out


def ended(a):
    out = {"unsubscribed": True}
    out.update(target(a["channel"], a["entry"]))
    out["error"] = {"code": a["code"], "message": a["message"]}
    return out


def gap(a):
    return {"gap": {"channel": a["entry"]["context"], "params": params(a["entry"]["params"]),
                    "from": a["from"], "to": a["to"], "recovered": a["recovered"],
                    "reason": a["reason"]}}


def pong(a):
    out = {"pong": True}
    if a.get("ref") is not None:
        out["ref"] = a["ref"]
    return out


def rpc_error(a):
    return {"id": json.loads(a["id_json"]), "ok": False,
            "error": {"code": a["code"], "message": a["message"]}}


def identity(a):
    return ident(a["subject"], a["staff"], a["super"])


def canary(a):
    return {"v": 1, "kind": "canary", "hub": a["hub"], "nonce": a["nonce"]}


def channel_message(a):
    env = json.loads(a["envelope"])
    out = {"channel": env["channel"], "params": params(env.get("params") or {}),
           "type": env.get("type", "message"), "data": env.get("data"), "seq": env["seq"],
           "epoch": env["epoch"]}
    if "ts" in env:
        out["ts"] = env["ts"]
    return out


def member(a):
    """SPEC 11.2: conn, sub, then info only when there is one."""
    out = {"conn": a["conn"], "sub": a["subject"]}
    if a.get("info") is not None:
        out["info"] = a["info"]
    return out


def presence_envelope(a):
    return {"v": 1, "kind": "presence", "op": "join" if a["join"] else "leave",
            "channel": a["entry"]["context"], "params": params(a["entry"]["params"]),
            "member": member(a["member"])}


def presence_event(a):
    return {("join" if a["join"] else "leave"): {
        "channel": a["entry"]["context"], "params": params(a["entry"]["params"]),
        "member": member(a["member"])}}


def presence(a):
    out = {"presence": {"channel": a["entry"]["context"], "params": params(a["entry"]["params"]),
                        "members": [member(m) for m in a["members"]]}}
    if a.get("ref") is not None:
        out["ref"] = a["ref"]
    return out


def stream(a):
    return {"stream": {"conn": a["conn"], "secret": a["secret"]}}


def post(a):
    out = {"v": 1, "kind": "post", "conn": a["conn"], "secret": a["secret"]}
    if a["n"]:
        out["n"] = a["n"]
    out["body"] = a["body"]
    return out


def close(a):
    return {"close": {"code": a["code"], "reason": a["reason"]}}


def sse_event(a):
    """SPEC 6.1, from the HTML standard's event stream grammar: an optional
    id line, the data split at CRLF, LF and CR into data lines, a blank line.
    Not JSON: the expected bytes are this text."""
    lines = a["data"].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = "" if a.get("id") is None else "id: " + a["id"] + "\n"
    return head + "".join("data: " + line + "\n" for line in lines) + "\n"


RAW = {"sse_event"}  # encoders whose output is text, not a JSON value

ENCODERS = {f.__name__: f for f in (welcome, authed, expiring, ack, invalidate, error, ended,
                                     gap, pong, rpc_error, identity, canary, channel_message,
                                     member, presence_envelope, presence_event, presence,
                                     stream, close, sse_event, post)}

U = {"context": "user", "params": {"user_id": "5"}}
EMOJI = {"context": "room", "params": {"é": "😀", "a": "x\"y\\z", "Z": "</script>"}}

CASES = [
    ("welcome anonymous", "welcome", {"hub": "3f9c0a1b2c4d", "conn": "3f9c0a1b2c4d.9a1b2c3d-17",
                                      "subject": None, "staff": False, "super": False,
                                      "expires": 0, "spread_ms": 1000, "max_frame": 65536}),
    ("welcome with identity", "welcome", {"hub": "h", "conn": "h.00000001-1", "subject": "Zoë 5",
                                          "staff": True, "super": False, "expires": 1764000300,
                                          "spread_ms": 0, "max_frame": 256}),
    ("authed with ref", "authed", {"subject": "5", "staff": False, "super": True,
                                   "expires": 1764000300, "ref": "auth"}),
    ("authed no ref", "authed", {"subject": "😀", "staff": False, "super": False,
                                 "expires": 1764000300, "ref": None}),
    ("expiring", "expiring", {"expires": 1764000300, "in": 30}),
    ("subscribed context with version", "ack", {"subscribed": True, "channel": False, "entry": U,
                                                "version": "k2f9a:42", "ref": 1}),
    ("subscribed channel with epoch", "ack", {"subscribed": True, "channel": True,
                                              "entry": {"context": "chat",
                                                        "params": {"room": "lobby"}},
                                              "epoch": "m1x", "seq": 17, "ref": None}),
    ("unsubscribed", "ack", {"subscribed": False, "channel": False, "entry": EMOJI,
                             "ref": "r\u00e9f"}),
    ("invalidate scoped, every key", "invalidate", {"entry": U, "version": "k2f9a:43",
                                                    "reason": None, "spread_ms": 250,
                                                    "ts": 1764000000123.5}),
    ("invalidate gap heal without version", "invalidate", {"entry": EMOJI, "version": None,
                                                           "reason": "gap", "spread_ms": -1,
                                                           "ts": 0}),
    ("invalidate resume", "invalidate", {"entry": {"context": "todos", "params": {}},
                                         "version": "0:0", "reason": "resume", "spread_ms": -1,
                                         "ts": 0}),
    ("error plain", "error", {"code": "bad_frame", "message": "binary frames are not supported",
                              "ref": None, "target": 0}),
    ("error on a channel with ref", "error", {"code": "forbidden",
                                              "message": "staff only: \"quoted\"\n",
                                              "ref": 7, "target": 2,
                                              "entry": {"context": "chat",
                                                        "params": {"room": "ü"}}}),
    ("ended", "ended", {"channel": False, "entry": U, "code": "forbidden",
                        "message": "no longer allowed"}),
    ("gap", "gap", {"entry": {"context": "chat", "params": {"room": "lobby"}}, "from": 18,
                    "to": 25, "recovered": False, "reason": "history_trimmed"}),
    ("pong", "pong", {"ref": 4}),
    ("pong no ref", "pong", {"ref": None}),
    ("rpc error string id", "rpc_error", {"id_json": "\"7\"", "code": "TIMEOUT",
                                          "message": "no reply from the server in time"}),
    ("rpc error integer id", "rpc_error", {"id_json": "42", "code": "RATE_LIMITED",
                                           "message": "too many; retry later"}),
    ("identity", "identity", {"subject": "5", "staff": True, "super": True}),
    ("identity anonymous", "identity", {"subject": None, "staff": False, "super": False}),
    ("canary", "canary", {"hub": "h-1", "nonce": "s17"}),
    ("channel message", "channel_message",
     {"envelope": dumps({"v": 1, "kind": "message", "channel": "chat",
                         "params": {"room": "lobby", "a": "1"}, "type": "ChatMessage",
                         "data": {"text": "hi 😀", "n": [1, 2.5, None, True]}, "seq": 18,
                         "epoch": "m1x", "ts": 1764000000123.5})}),
    ("member", "member", {"conn": "3f9c0a1b2c4d.9a1b2c3d-17", "subject": "5"}),
    ("member anonymous with info", "member",
     {"conn": "h.00000001-2", "subject": None,
      "info": {"name": "Zoë \"😀\"", "tags": ["a", 1, 2.5, True, None], "z": {}}}),
    ("presence join envelope", "presence_envelope",
     {"join": True, "entry": EMOJI, "member": {"conn": "h.00000001-2", "subject": "9",
                                               "info": "Ada"}}),
    ("presence leave envelope", "presence_envelope",
     {"join": False, "entry": {"context": "chat", "params": {}},
      "member": {"conn": "h.00000001-3", "subject": None}}),
    ("join frame", "presence_event",
     {"join": True, "entry": {"context": "chat", "params": {"room": "lobby"}},
      "member": {"conn": "77aa01.0c0ffee0-3", "subject": "9", "info": {"name": "Ada"}}}),
    ("leave frame", "presence_event",
     {"join": False, "entry": EMOJI, "member": {"conn": "h.00000001-2", "subject": None}}),
    ("presence answer", "presence",
     {"entry": {"context": "chat", "params": {"room": "lobby"}}, "ref": 5,
      "members": [{"conn": "3f9c0a1b2c4d.9a1b2c3d-17", "subject": "5"},
                  {"conn": "77aa01.0c0ffee0-3", "subject": "9", "info": {"name": "Ada"}}]}),
    ("presence answer empty, no ref", "presence",
     {"entry": EMOJI, "ref": None, "members": []}),
    ("stream", "stream", {"conn": "3f9c0a1b2c4d.9a1b2c3d-17",
                          "secret": "0123456789abcdef0123456789abcdef"}),
    ("post envelope, unnumbered", "post", {"conn": "h.1-1", "secret": "f" * 32, "n": 0,
                                           "body": "{}"}),
    ("post envelope", "post", {"conn": "h.00000001-7", "secret": "0123456789abcdef" * 2,
                               "n": 9007199254740991, "body": "{\"action\":\"ping\"}\n{\"action\":\"message\",\"data\":\"é\\n\"}"}),
    ("close slow consumer", "close", {"code": 4008, "reason": "slow consumer"}),
    ("close with a non-ASCII reason", "close", {"code": 4005, "reason": "sitzung \"beendet\" é"}),
    ("sse event", "sse_event", {"id": None, "data": "{\"pong\":true}"}),
    ("sse event with id", "sse_event", {"id": "k2f9a:43,-,m1x:18",
                                        "data": "{\"invalidate\":[\"todos\"]}"}),
    ("sse event, empty data", "sse_event", {"id": None, "data": ""}),
    ("sse event, line breaks of every kind", "sse_event",
     {"id": "0:0", "data": "{\"a\":\r\n1,\r\"b\":\n2}\n"}),
]


def build():
    cases = [{"name": n, "encoder": enc, "args": args,
              "expect": ENCODERS[enc](args) if enc in RAW else dumps(ENCODERS[enc](args))}
             for n, enc, args in CASES]
    return {"kind": "outbound",
            "description": "Every frame the hub encodes (SPEC 8, 11), by encoder, with the exact "
                           "bytes (written by gen.py independently of the C encoders).",
            "cases": cases}


if __name__ == "__main__":
    text = json.dumps(build(), ensure_ascii=False, indent=1) + "\n"
    out = HERE / "frames.json"
    if "--check" in sys.argv:
        sys.exit(0 if out.exists() and out.read_text(encoding="utf-8") == text else 1)
    out.write_text(text, encoding="utf-8")
