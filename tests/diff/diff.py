"""Differential run of the three protocol codecs (tests/diff/README.md).

One long-lived worker per language (worker.c built as build/bin/mh-diff-worker,
worker.mjs over client-js/dist, worker.py over django/mizan_hub/protocol.py)
answers the same requests; every input on which their answers differ -- the
result, or the error code and its place -- is minimized and reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import queue
import random
import re
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

OPS = ("key", "match", "inval", "henc", "rt", "hdec", "frame", "env")
#: Operations whose input is JSON text for an invalidation list or scope:
#: their errors carry a path, and parse errors are told apart.
PATH_OPS = {"key", "match", "inval", "henc", "rt"}
ANSWER_TIMEOUT = 20.0


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------

class Worker:
    """One language's worker process: requests in, answers out, in order."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.answers.put(line)
        self.answers.put(None)

    def _drain_stderr(self) -> None:
        self.stderr = b""
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr = (self.stderr + line)[-4000:]

    def send(self, lines: list[bytes]) -> threading.Thread:
        def write() -> None:
            try:
                for line in lines:
                    self.proc.stdin.write(line)  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
        t = threading.Thread(target=write, daemon=True)
        t.start()
        return t

    def receive(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            try:
                line = self.answers.get(timeout=ANSWER_TIMEOUT)
            except queue.Empty:
                line = None
                self.restart("no answer in %.0fs (hang?)" % ANSWER_TIMEOUT)
            if line is None:
                out.append({"crash": f"{self.name} worker died: "
                            f"{self.stderr.decode(errors='replace')[-500:]}"})
                self.restart("died")
                # Every later answer of this batch is lost with the process.
                out.extend({"crash": f"{self.name} worker restarted"}
                           for _ in range(n - len(out)))
                return out
            out.append(json.loads(line))
        return out

    def restart(self, why: str) -> None:
        print(f"# {self.name} worker restarted: {why}", file=sys.stderr)
        try:
            self.proc.kill()
            self.proc.wait(5)
        except OSError:
            pass
        self.start()

    def close(self) -> int:
        """Ends the worker; its exit status (a sanitizer's leak report at
        exit makes it nonzero)."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            return self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            return -1


def start_workers(build: Path) -> list[Worker]:
    c = build / "bin" / "mh-diff-worker"
    dist = ROOT / "client-js" / "dist" / "json.js"
    if not c.exists():
        sys.exit(f"diff: {c} is missing (cmake --build {build} --target mh-diff-worker)")
    if not dist.exists():
        sys.exit(f"diff: {dist} is missing (cd client-js && npm run build)")
    return [Worker("c", [str(c)]),
            Worker("ts", ["node", str(HERE / "worker.mjs")]),
            Worker("py", [sys.executable, str(HERE / "worker.py")])]


def ask(workers: list[Worker], reqs: list[tuple[str, str]]) -> list[list[dict]]:
    """Each worker's answers to the requests, as [request][worker]."""
    lines = [(json.dumps({"op": op, "in": text}) + "\n").encode() for op, text in reqs]
    writers = [w.send(lines) for w in workers]
    per_worker = [w.receive(len(lines)) for w in workers]
    for t in writers:
        t.join()
    return [list(answers) for answers in zip(*per_worker)]


# ---------------------------------------------------------------------------
# Comparing answers
# ---------------------------------------------------------------------------

def same_json(a: object, b: object) -> bool:
    """JSON equality: numbers by value (5 == 5.0), never True == 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def comparable(op: str, answer: dict) -> object:
    """What must agree: the whole result; of an error its code, and its place
    where the SPEC defines one (pos of a header, path into a JSON list)."""
    if "ok" in answer:
        return {"ok": answer["ok"]}
    if "err" in answer:
        out = {"err": answer["err"]}
        if op == "hdec":
            out["pos"] = answer.get("pos")
        if op in PATH_OPS:
            out["stage"] = answer.get("stage")
            if answer.get("stage") != "parse":
                out["path"] = answer.get("path")
        return out
    return {"crash": True}


def agree(op: str, answers: list[dict]) -> bool:
    first = comparable(op, answers[0])
    return "crash" not in first and all(same_json(first, comparable(op, a))
                                        for a in answers[1:])


# ---------------------------------------------------------------------------
# The generator: JSON text built node by node, so escapes, duplicate keys,
# number spellings and whitespace are all chosen, then mutated as text.
# ---------------------------------------------------------------------------

POW2 = [e for e in range(-1074, 1024)]
NUMBER_GOOD = ["0", "-0", "-0.0", "0.0", "5", "5.0", "5.5", "-5", "1e21", "1e+21", "1E21",
               "1e20", "999999999999999999999", "123456789012345678901", "0.1", "1e-7",
               "1.5e-7", "1e-6", "0.000001", "1e-400", "1e308", "1.7976931348623157e308",
               "5e-324", "2.2250738585072014e-308", "9007199254740991", "9007199254740992",
               "9007199254740993", "-9007199254740991", "-9007199254740993",
               "18014398509481984", "9007199254740991.0", "1.0", "100", "1e2", "1E+2", "0.5",
               "4096", "4294967296", "4294967297", "2e-1074", "4.9e-324", "-0e0", "0e-5",
               "1" + "0" * 400 + "e-400", "0." + "0" * 330 + "1"]
NUMBER_BAD = ["1e400", "-1e400", "1.8e308", "01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN",
              "Infinity", "-Infinity", "1_0", "--1", "1e+", "00"]
#: Valid names (1-64 bytes, no control character) and invalid ones.
GOOD_NAMES = ["a", "b", "user", "user_id", "9", "10", "0", "-1", "1.5", "😀", "\ufffd", "é",
              "e\u0301", "\u0301", "a b", "a,b", "a;b", "a=b", "%", "%25", "~", "/", "~1",
              "a/b", "\u2028", "\u00a0", "日本", "__proto__", "constructor", "toString",
              "hasOwnProperty", "valueOf", "length", "context", "params", "action", "x" * 64,
              "é" * 32, "😀" * 16, "\U0010ffff", "\U00010000", "\uffff", "\ud7ff", "\ue000",
              "A", "Z", "_", "-", ".", "\u0080", "\u07ff", "\u0800", "a\"b", "a\\b", "ß", "İ",
              "ﬀ", "Å", "Å", "%" * 64]
#: Valid context names but too long for a param name, then invalid everywhere.
LONG_NAMES = ["x" * 65, "é" * 33, "😀" * 17, "x" * 128, "😀" * 32, "%" * 128]
BAD_NAMES = ["", "\u0000", "a\u0000", "\u0000a", "\u001f", "\u007f", "\t", "\n", "x" * 129,
             "😀" * 33, "é" * 65, "%" * 129]
NAMES = GOOD_NAMES + LONG_NAMES + BAD_NAMES
LONE = ["\\ud800", "\\udfff", "\\udbff", "\\udc00", "\\ud83d", "\\ude00",
        "\\ud83d\\ud83d", "\\ude00\\ud83d", "\\ud83d\\u0041"]
PAIRS = ["\\ud83d\\ude00", "\\uD83D\\uDE00", "\\udbff\\udfff", "\\ud800\\udc00"]

#: How often this input takes an invalid choice where it has one: set per
#: input, so that some inputs are clean and some are full of errors.
BAD = [0.1]


def bad(rnd: random.Random) -> bool:
    return rnd.random() < BAD[0]


def name(rnd: random.Random, param: bool = False) -> str:
    if bad(rnd):
        return rnd.choice(BAD_NAMES + (LONG_NAMES if param else []))
    if not param and rnd.random() < 0.1:
        return rnd.choice(LONG_NAMES)
    return rnd.choice(GOOD_NAMES)


def rand_double(rnd: random.Random) -> float:
    while True:
        x = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(x):
            return x


def number_text(rnd: random.Random) -> str:
    r = rnd.random()
    if r < 0.35:
        return rnd.choice(NUMBER_BAD if bad(rnd) else NUMBER_GOOD)
    if r < 0.65:
        x = math.ldexp(1.0, rnd.choice(POW2)) * rnd.choice((1, -1))
        return repr(x)
    if r < 0.8:
        return repr(rand_double(rnd))
    if r < 0.9:
        n = rnd.choice((2**53 - 1, 2**53, 2**53 + 1, 2**64, 2**63 - 1, 10**21, 10**21 - 1))
        return str(n * rnd.choice((1, -1)))
    return str(rnd.randint(-10**6, 10**6)) + rnd.choice(("", ".0", "e0", "e-3", "e3", ".25"))


def rand_text(rnd: random.Random, short: bool = True) -> str:
    """A string value: mostly names, some random Unicode, some long."""
    r = rnd.random()
    if r < 0.5:
        return name(rnd)
    if r < 0.6:
        return name(rnd) + name(rnd)
    if r < 0.7 and not short:
        ch = rnd.choice(["x", "é", "😀", "%", "\\"] + (["\u0000"] if bad(rnd) else []))
        n = rnd.choice([63, 64, 65, 127, 128, 129, 255, 256, 257, 8191, 8192, 8193])
        return (ch * n)[: max(1, n // max(1, len(ch.encode())))]
    pool = ["a", "0", " ", ",", ";", "=", "%", "\"", "\\", "é", "\u0301", "😀", "\u2028",
            "\ufeff", "\ufffd", "{", "[", "/", "~"]
    if bad(rnd):
        pool += ["\u0000", "\u001f", "\u007f"]
    return "".join(rnd.choice(pool) for _ in range(rnd.randint(0, 8)))


class Raw:
    """A piece of JSON text written as is (a lone-surrogate escape, a number)."""

    def __init__(self, text: str) -> None:
        self.text = text


def js_string(s: str, rnd: random.Random) -> str:
    """s as a JSON string literal, escaping some characters at random."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch == '"' or ch == "\\" or cp < 0x20:
            if rnd.random() < 0.5 or cp < 0x20 and ch not in "\b\f\n\r\t":
                out.append("\\u%04x" % cp if rnd.random() < 0.7 else "\\u%04X" % cp)
            else:
                out.append(json.dumps(ch)[1:-1])
        elif rnd.random() < 0.08:
            if cp >= 0x10000:
                v = cp - 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
            else:
                out.append("\\u%04x" % cp)
        elif ch == "/" and rnd.random() < 0.3:
            out.append("\\/")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def raw_string(rnd: random.Random) -> Raw:
    """A string literal with a surrogate escape: lone (bad_json) or paired."""
    text = name(rnd)
    cut = rnd.randint(0, len(text))
    esc = rnd.choice(LONE if bad(rnd) else PAIRS)
    return Raw(js_string(text[:cut], rnd)[:-1] + esc + js_string(text[cut:], rnd)[1:])


def ws(rnd: random.Random) -> str:
    if rnd.random() < 0.85:
        return ""
    pool = [" ", "\t", "\n", "\r"]
    if bad(rnd) and rnd.random() < 0.3:
        pool = ["\u00a0", "\f", "\u0000", "\ufeff", "\v", "\u2028"]
    return "".join(rnd.choice(pool) for _ in range(rnd.randint(1, 3)))


def dump(v: object, rnd: random.Random) -> str:
    if isinstance(v, Raw):
        return v.text
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return js_string(v, rnd)
    if isinstance(v, list):
        return "[" + ",".join(ws(rnd) + dump(x, rnd) + ws(rnd) for x in v) + "]"
    if isinstance(v, Obj):
        return "{" + ",".join(ws(rnd) + (k.text if isinstance(k, Raw) else js_string(k, rnd))
                              + ws(rnd) + ":" + ws(rnd) + dump(x, rnd) + ws(rnd)
                              for k, x in v.items) + "}"
    raise TypeError(type(v))


class Obj:
    """A JSON object as written: keys in order, duplicates allowed."""

    def __init__(self, items: list | None = None) -> None:
        self.items: list = list(items or [])

    def add(self, k: object, v: object) -> "Obj":
        self.items.append((k, v))
        return self


def nested(rnd: random.Random, depth: int, leaf: object = 1) -> object:
    v = leaf
    for _ in range(depth):
        v = [v] if rnd.random() < 0.5 else Obj([("k", v)])
    return v


def scalar(rnd: random.Random) -> object:
    r = rnd.random()
    if r < 0.35:
        return Raw(number_text(rnd))
    if r < 0.7:
        return rand_text(rnd, short=False)
    if r < 0.8:
        return rnd.choice([True, False, None])
    if r < 0.88:
        return raw_string(rnd)
    if bad(rnd):
        return nested(rnd, rnd.randint(0, 3), rnd.choice([1, "x", None]))
    return rand_text(rnd)


def key_of(rnd: random.Random) -> object:
    if rnd.random() < 0.06:
        return raw_string(rnd)
    return rand_text(rnd) if rnd.random() < 0.2 else name(rnd, param=True)


def params(rnd: random.Random) -> object:
    if bad(rnd) and rnd.random() < 0.3:
        return rnd.choice([None, [], "x", 1, True, [Obj()]])
    o = Obj()
    n = rnd.choice([0, 1, 1, 2, 3, 5, 15, 16])
    if bad(rnd):
        n = rnd.choice([17, 18, rnd.randint(0, 40)])
    names: list = []
    for _ in range(n):
        k = key_of(rnd) if (not names or rnd.random() > 0.15) else rnd.choice(names)
        names.append(k)
        o.add(k, scalar(rnd))
    return o


def scope(rnd: random.Random) -> object:
    if bad(rnd) and rnd.random() < 0.2:
        return rnd.choice([None, "user", [], 5])
    o = Obj()
    fields = [("context", lambda: scalar(rnd) if bad(rnd) and rnd.random() < 0.5 else name(rnd)),
              ("params", lambda: params(rnd))]
    rnd.shuffle(fields)
    for key, make in fields:
        if rnd.random() < 0.92:
            o.add(key, make())
    if rnd.random() < 0.1:
        o.add(key_of(rnd), scalar(rnd))
    if rnd.random() < 0.05:  # a duplicate field: the last wins
        o.add(rnd.choice(["context", "params"]), rnd.choice([None, "a", params(rnd)]))
    return o


def entry(rnd: random.Random) -> object:
    r = rnd.random()
    if r < 0.35:
        return name(rnd) if rnd.random() < 0.9 else raw_string(rnd)
    if bad(rnd) and rnd.random() < 0.3:
        return rnd.choice([None, 5, True, [], Raw(number_text(rnd))])
    return scope(rnd)


def inval_list(rnd: random.Random) -> object:
    if bad(rnd) and rnd.random() < 0.1:
        return rnd.choice([Obj(), "a", None, 1])
    r = rnd.random()
    if r < 0.03:
        return [name(rnd) for _ in range(rnd.choice([255, 256, 257]))]
    if r < 0.06:  # 8 KiB headers: many long percent-encoded names
        return [Obj([("context", "%" * rnd.choice([40, 42, 43, 128])),
                     ("params", Obj([("%" * 64, "%" * rnd.randint(60, 256))]))])
                for _ in range(rnd.randint(5, 25))]
    return [entry(rnd) for _ in range(rnd.choice([0, 1, 1, 2, 3, 4, 8]))]


# -- headers -----------------------------------------------------------------

PCT_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def pct(s: str, rnd: random.Random) -> str:
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in PCT_SAFE or (0x21 <= b <= 0x7E and c not in "%,;=" and rnd.random() < 0.7):
            out.append(c)
        else:
            out.append(("%%%02X" if rnd.random() < 0.7 else "%%%02x") % b)
    return "".join(out)


def ows(rnd: random.Random) -> str:
    return "" if rnd.random() < 0.7 else rnd.choice([" ", "\t", "  ", " \t"])


def header_name(rnd: random.Random) -> str:
    r = rnd.random()
    if r < 0.8 or not bad(rnd):
        return pct(name(rnd) if rnd.random() < 0.8 else rand_text(rnd), rnd)
    return rnd.choice(["%", "%G1", "%4", "%%", "a b", "é", "\u0000", "\x7f", "%FF", "%C3",
                       "%ED%A0%80", "%C0%80", "%F4%90%80%80", "\"", "(", "a=b"])


def header(rnd: random.Random) -> str:
    if rnd.random() < 0.03:
        unit = rnd.choice(["a, ", "%25" * 40 + ", ", "b;c=d,", "x"])
        n = rnd.choice([8192, 8193, 8191]) // len(unit) + 1
        return (unit * n)[: rnd.choice([8190, 8191, 8192, 8193, 8194])]
    if rnd.random() < 0.03:
        return ", ".join(["a"] * rnd.choice([255, 256, 257]))
    parts = []
    for _ in range(rnd.choice([0, 1, 1, 2, 3, 5])):
        el = header_name(rnd) if rnd.random() > 0.08 else ""
        if rnd.random() < 0.5:
            el += ows(rnd) + ";"
            n = rnd.choice([0, 1, 2, 3, 16, 17])
            ps = []
            names = []
            for _ in range(n):
                nm = header_name(rnd) if not names or rnd.random() > 0.1 else rnd.choice(names)
                names.append(nm)
                val = pct(rand_text(rnd), rnd) if rnd.random() < 0.9 else header_name(rnd)
                sep = ows(rnd) + "=" + ows(rnd) if rnd.random() < 0.95 else ""
                ps.append(nm + sep + val)
            el += ows(rnd) + (ows(rnd) + ";" + ows(rnd)).join(ps)
            if rnd.random() < 0.05:
                el += ";"
        parts.append(el)
    sep = lambda: ows(rnd) + rnd.choice([",", ",", ",", ";", "", ",,"]) + ows(rnd)  # noqa: E731
    out = ows(rnd)
    for i, p in enumerate(parts):
        out += (sep() if i else "") + p
    return out + ows(rnd)


# -- frames and envelopes ----------------------------------------------------

GOOD_REFS = [1, 0, -1, 1.0, 2**53 - 1, Raw("-0"), Raw("1e2"), Raw("9007199254740991.0"), "r",
             "x" * 64, "é" * 32, "😀" * 16, "\u0000", "7"]
BAD_REFS = [1.5, 2**53, Raw("9007199254740993"), "", "x" * 65, "é" * 33, None, True, [], Obj(),
            Raw("1e300"), Raw("-9007199254740992")]
GOOD_ACTIONS = ["auth", "refresh", "subscribe", "unsubscribe", "message", "rpc", "ctx", "ping",
                "presence"]
BAD_ACTIONS = ["pong", "", "AUTH", "ping\u0000", "subscribe ", "__proto__", "toString"]


def ref(rnd: random.Random) -> object:
    if bad(rnd):
        return rnd.choice(BAD_REFS) if rnd.random() < 0.8 else scalar(rnd)
    return rnd.choice(GOOD_REFS)


def maybe(rnd: random.Random, o: Obj, k: str, make, p: float = 0.85) -> None:
    if rnd.random() < p:
        o.add(k, make())


def pick(rnd: random.Random, good: list, bad_: list) -> object:
    v = rnd.choice(bad_ if bad(rnd) else good)
    return v() if callable(v) else v


def frame(rnd: random.Random) -> object:
    if bad(rnd) and rnd.random() < 0.1:
        return rnd.choice([[], "ping", 1, None, [Obj([("action", "ping")])]])
    o = Obj()
    action = pick(rnd, GOOD_ACTIONS, BAD_ACTIONS + [lambda: scalar(rnd)])
    fields = [("action", lambda: action)]
    if rnd.random() < 0.5:
        fields.append(("ref", lambda: ref(rnd)))
    token = lambda: pick(rnd, ["t", "x" * 8192, "é" * 4096, "eyJ.a.b"],  # noqa: E731
                         ["", "x" * 8193, "é" * 4097, None, 5, lambda: scalar(rnd)])
    fname = lambda: scalar(rnd) if bad(rnd) and rnd.random() < 0.5 else name(rnd)  # noqa: E731
    if action in ("auth", "refresh", "subscribe"):
        fields.append(("token", token))
    if action in ("subscribe", "unsubscribe", "ctx", "message", "presence") or bad(rnd):
        target = rnd.choice(["context", "channel"])
        if action in ("message", "presence"):
            target = "channel"
        elif action == "ctx":
            target = "context"
        fields.append((target, fname))
        if bad(rnd):
            fields.append(({"context": "channel"}.get(target, "context"), fname))
        fields.append(("params", lambda: params(rnd)))
    if action == "subscribe" or bad(rnd):
        fields.append(("since", lambda: pick(rnd, ["", "k2f9a:41", "x" * 128, "é" * 64],
                                             ["x" * 129, "é" * 65, None, 5])))
    if action in ("rpc", "ctx") or bad(rnd):
        fields.append(("id", lambda: ref(rnd)))
        fields.append(("fn", fname))
        fields.append(("args", lambda: pick(rnd, [Obj, list, lambda: params(rnd),
                                                  lambda: Obj([("\u0000", 1)])],
                                            [None, "x", 1, lambda: nested(rnd, 64),
                                             lambda: nested(rnd, rnd.randint(60, 66))])))
    if action == "message" or bad(rnd):
        fields.append(("data", lambda: pick(rnd, [None, 1, "x", lambda: Obj([("\u0000", 1)]),
                                                  lambda: nested(rnd, rnd.randint(0, 63)),
                                                  lambda: scalar(rnd)],
                                            [lambda: nested(rnd, rnd.randint(63, 66))])))
    rnd.shuffle(fields)
    for k, make in fields:
        maybe(rnd, o, k, make, 0.7 if bad(rnd) else 0.98)
    if rnd.random() < 0.1:
        o.add(key_of(rnd), scalar(rnd))
    if rnd.random() < 0.05 and o.items:
        k, _ = rnd.choice(o.items)
        o.add(k, scalar(rnd))
    return o


GOOD_KINDS = ["invalidate", "message", "logout", "disconnect", "canary", "reply", "send", "close",
              "presence", "post"]
BAD_KINDS = ["other", "", "message\u0000", "Invalidate"]


def envelope(rnd: random.Random) -> object:
    if bad(rnd) and rnd.random() < 0.1:
        return rnd.choice([[], "x", 1, None])
    kind = pick(rnd, GOOD_KINDS, BAD_KINDS + [lambda: scalar(rnd)])
    s = lambda n: pick(rnd, ["a", "x" * n, "é" * (n // 2), "abc", "😀"],  # noqa: E731
                       ["", "x" * (n + 1), "a\u0000b", None, 5, "é" * (n // 2 + 1)])
    fields = [("v", lambda: pick(rnd, [1, 1, 1.0, Raw("1.0"), Raw("1e0")],
                                 [2, "1", None, True, 0])),
              ("kind", lambda: kind)]
    if rnd.random() < 0.5:
        fields.append(("ts", lambda: pick(rnd, [0, 1.5, Raw("-0"), 1e300, 2**53 + 1,
                                                1733380000123],
                                          [-1, "1", None, Raw("-1e-300")])))
    if kind == "invalidate" or bad(rnd):
        lst = inval_list(rnd)
        fields.append(("invalidate", lambda: lst))
        ctxs = []
        for e in lst if isinstance(lst, list) else []:
            if isinstance(e, str):
                ctxs.append(e)
            elif isinstance(e, Obj):
                ctxs += [v for k, v in e.items if k == "context" and isinstance(v, str)]
        version = lambda: pick(rnd, ["k2f9a:41", "a:0", "x" * 32 + ":1",  # noqa: E731
                                     "a:" + "9" * 16],
                               ["a:01", "A:1", "x" * 33 + ":1", "a:" + "9" * 17, ":1", "a:",
                                1, None, "a:-1", "a:1 "])
        fields.append(("versions", lambda: pick(
            rnd, [lambda: Obj([(c, version()) for c in ctxs]),
                  lambda: Obj([(c, version()) for c in ctxs] + [("\u0000", version())])],
            [lambda: Obj(), None, list, lambda: Obj([(c, version()) for c in ctxs[1:]])])))
    if kind == "message" or bad(rnd):
        fields += [("channel", lambda: scalar(rnd) if bad(rnd) else name(rnd)),
                   ("params", lambda: params(rnd)),
                   ("type", lambda: scalar(rnd) if bad(rnd) else name(rnd)),
                   ("data", lambda: scalar(rnd) if rnd.random() < 0.9
                    else nested(rnd, rnd.randint(60, 66))),
                   ("seq", lambda: pick(rnd, [1, 1.0, 2**53 - 1, 7],
                                        [0, -1, 1.5, 2**53, "1", None])),
                   ("epoch", lambda: pick(rnd, ["a", "x" * 32, "k2f9a"],
                                          ["", "A", "x" * 33, "a:1", 1]))]
    if kind == "presence" or bad(rnd):
        def member() -> object:
            m = Obj()
            for k, make in [("conn", lambda: s(128)),
                            ("sub", lambda: pick(rnd, [None, lambda: s(256)], [lambda: s(256)])),
                            ("info", lambda: pick(rnd, [1, "x", lambda: params(rnd), list,
                                                        lambda: "x" * 1022],
                                                  [None, lambda: "x" * 1023,
                                                   lambda: nested(rnd, rnd.randint(60, 66))]))]:
                maybe(rnd, m, k, make, 0.6 if k == "info" else 0.97)
            return m
        fields += [("op", lambda: pick(rnd, ["join", "leave"], ["", "Join", None, 1])),
                   ("channel", lambda: scalar(rnd) if bad(rnd) else name(rnd)),
                   ("params", lambda: params(rnd)),
                   ("member", lambda: pick(rnd, [member], [None, "x", list]))]
    if kind == "logout" or bad(rnd):
        fields.append(("session", lambda: pick(rnd, ["a" * 64, "0123456789abcdef" * 4],
                                               ["A" * 64, "a" * 63, "a" * 65, "g" * 64, 1, None,
                                                "0" * 63 + "\u0000"])))
    if kind == "disconnect" or bad(rnd):
        fields.append(("sub", lambda: s(256)))
    if kind in ("disconnect", "close") or bad(rnd):
        fields.append(("reason", lambda: s(123)))
    if kind == "canary" or bad(rnd):
        fields += [("hub", lambda: s(64)), ("nonce", lambda: s(64))]
    if kind in ("reply", "send", "close", "post") or bad(rnd):
        fields.append(("conn", lambda: s(128)))
    if kind == "post" or bad(rnd):
        fields += [("secret", lambda: pick(rnd, ["0123456789abcdef" * 2, "f" * 32],
                                           ["F" * 32, "a" * 31, "a" * 33, "g" * 32, 1, None])),
                   ("n", lambda: pick(rnd, [1, 1.0, 2**53 - 1, 7], [0, -1, 1.5, 2**53, "1", None])),
                   ("body", lambda: pick(rnd, ['{"action":"ping"}\n{}', "x", "é" * 3],
                                         ["", None, 5, "a\u0000b"]))]
    if kind in ("reply", "send") or bad(rnd):
        fields.append(("frame", lambda: pick(
            rnd, [lambda: Obj([("id", ref(rnd))]), lambda: Obj([("id", 1), ("x", scalar(rnd))])],
            [Obj, None, list, "x", lambda: Obj([("id", 1), ("x", nested(rnd, rnd.randint(60, 66)))])])))
    if kind == "close" or bad(rnd):
        fields.append(("code", lambda: pick(rnd, [4000, 4999, 4000.0, 4321],
                                            [3999, 5000, 4000.5, "4000", None])))
    rnd.shuffle(fields)
    o = Obj()
    for k, make in fields:
        maybe(rnd, o, k, make, 0.8 if bad(rnd) else 0.99)
    if rnd.random() < 0.1:
        o.add(key_of(rnd), scalar(rnd))
    if rnd.random() < 0.05 and o.items:
        k, _ = rnd.choice(o.items)
        o.add(k, scalar(rnd))
    return o


def mutate(text: str, rnd: random.Random) -> str:
    """A few text-level edits: what a structured generator never writes."""
    for _ in range(rnd.choice([1, 1, 2, 3])):
        if not text:
            return rnd.choice(["", " ", "\u0000", "[", "{"])
        i = rnd.randrange(len(text) + 1)
        r = rnd.random()
        if r < 0.25:
            text = text[:i] + rnd.choice(["\u0000", "\u0000", " ", ",", "]", "}", "[", "{",
                                          "\"", "\\", ":", "e", "-", "0", "\u00e9", "\ufeff",
                                          "\\u0000", "\\ud800", "1e400"]) + text[i:]
        elif r < 0.4:  # a NUL right after a number or literal
            for j in range(i, len(text)):
                if text[j] in "0123456789el" and (j + 1 == len(text) or text[j + 1] in ",}] "):
                    text = text[:j + 1] + "\u0000" + text[j + 1:]
                    break
        elif r < 0.6:
            j = min(len(text), i + rnd.randint(1, 4))
            text = text[:i] + text[j:]
        elif r < 0.75:
            text = text[:i]
        elif r < 0.9:
            j = min(len(text), i + rnd.randint(1, 20))
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + "[" * rnd.choice([63, 64, 65]) + text[i:]
    return text


def generate(op: str, rnd: random.Random) -> str:
    BAD[0] = rnd.choice([0.0, 0.0, 0.02, 0.05, 0.1, 0.3])
    if op == "hdec":
        text = header(rnd)
        if rnd.random() < 0.1:
            text = mutate(text, rnd)
        return text
    if op == "key":
        v = scope(rnd)
    elif op == "match":
        v = Obj([("entry", entry(rnd)), ("subscription", scope(rnd))])
        if rnd.random() < 0.3:
            v.items.reverse()
    elif op in ("inval", "henc", "rt"):
        v = inval_list(rnd)
    elif op == "frame":
        v = frame(rnd)
    else:
        v = envelope(rnd)
    text = ws(rnd) + dump(v, rnd) + ws(rnd)
    if BAD[0] and rnd.random() < 0.15:
        text = mutate(text, rnd)
    return text


# ---------------------------------------------------------------------------
# Minimizing a divergence
# ---------------------------------------------------------------------------

def minimize(workers: list[Worker], op: str, text: str, budget: float = 20.0) -> str:
    """Delta debugging over characters: the shortest text found that still
    makes the workers disagree (within `budget` seconds)."""
    deadline = time.monotonic() + budget

    def diverges(t: str) -> bool:
        return not agree(op, ask(workers, [(op, t)])[0])

    n = 2
    while len(text) >= 1 and time.monotonic() < deadline:
        chunk = max(1, len(text) // n)
        # Try all removals of this size in one batch, take the first that keeps it.
        cands = [text[:i] + text[i + chunk:] for i in range(0, len(text), chunk)]
        answers = ask(workers, [(op, c) for c in cands])
        for c, a in zip(cands, answers):
            if not agree(op, a):
                text = c
                n = max(n - 1, 2)
                break
        else:
            if chunk == 1:
                break
            n = min(len(text), n * 2)
    # Then simplify characters: replace each by 'a' where that keeps it.
    i = 0
    while i < len(text) and time.monotonic() < deadline:
        if text[i] not in "a{}[]\":,":
            c = text[:i] + "a" + text[i + 1:]
            if diverges(c):
                text = c
        i += 1
    return text


KIND = {"key": "canonical_key", "match": "match", "inval": "invalidation_decode",
        "henc": "header_encode", "rt": "roundtrip", "hdec": "header_decode",
        "frame": "frame_decode", "env": "envelope_decode"}


def as_vectors(op: str, text: str, answers: dict) -> list[dict]:
    """The finding as shared-vector cases (SPEC 15), one per distinct answer:
    whoever fixes the divergence keeps the right one and adds it to
    protocol/vectors/KIND.json. None when the input is no JSON value a vector
    file can hold (the JSON operations take a value, not text)."""
    if op in PATH_OPS:
        try:
            def no_duplicates(pairs: list) -> dict:
                if len({k for k, _ in pairs}) != len(pairs):
                    raise ValueError("a duplicate key: no vector file keeps it")
                return dict(pairs)
            value = json.loads(text, parse_constant=lambda c: 1 / 0,
                               object_pairs_hook=no_duplicates)
            json.dumps(value).encode("utf-8")
            if _SURROGATE.search(json.dumps(value, ensure_ascii=False)):
                return []
        except (ValueError, ZeroDivisionError, RecursionError):
            return []
        if any(a.get("stage") == "parse" for a in answers.values() if "err" in a):
            return []
    else:
        value = text
    out, seen = [], []
    for lang, a in answers.items():
        if "ok" in a:
            case = {"name": f"diff: {op} ({lang})", "input": value, "expect": a["ok"]}
        elif "err" in a:
            err = {"code": a["err"]}
            if op == "hdec" and a.get("pos") is not None:
                err["pos"] = a["pos"]
            if op in PATH_OPS and a.get("path") is not None:
                err["path"] = a["path"]
            case = {"name": f"diff: {op} ({lang})", "input": value, "error": err}
        else:
            continue
        body = {k: v for k, v in case.items() if k != "name"}
        if body not in seen:
            seen.append(body)
            out.append({"kind": KIND[op], "case": case})
    return out


_SURROGATE = re.compile("[\ud800-\udfff]")


# ---------------------------------------------------------------------------
# The number sweep: SPEC 1's string form of every power of two and of random
# doubles, all three against each other (and so C against JavaScript).
# ---------------------------------------------------------------------------

def number_sweep(workers: list[Worker], count: int, seed: int) -> tuple[int, list[str]]:
    rnd = random.Random(seed)
    xs = [math.ldexp(1.0, e) * s for e in range(-1074, 1024) for s in (1, -1)]

    def short_decimal() -> float:
        # few digits at any exponent: the k = 1..16 paths, and near-ties
        digits = str(rnd.randint(1, 10 ** rnd.randint(1, 17)))
        return float(f"{digits}e{rnd.randint(-340, 300)}") * rnd.choice((1, -1))

    def neighbour() -> float:
        # one or two ulps from a power of two or a short decimal
        x = math.ldexp(1.0, rnd.randint(-1074, 1023)) if rnd.random() < 0.5 else short_decimal()
        for _ in range(rnd.randint(1, 2)):
            x = math.nextafter(x, rnd.choice((math.inf, -math.inf)))
        return x

    makers = [lambda: rand_double(rnd), lambda: rand_double(rnd), short_decimal, neighbour]
    for i in range(count):
        x = makers[i % 4]()
        xs.append(x if math.isfinite(x) else 0.0)
    bad: list[str] = []
    for i in range(0, len(xs), 5000):
        chunk = xs[i:i + 5000]
        answers = ask(workers, [("nums", "[" + ",".join(map(repr, chunk)) + "]")])[0]
        if not all("ok" in a for a in answers):
            bad.append(f"nums batch {i}: {answers}")
            continue
        for x, c, t, p in zip(chunk, *(a["ok"] for a in answers)):
            if not c == t == p:
                bad.append(f"{x!r}: c {c} ts {t} py {p}")
    return len(xs), bad


# ---------------------------------------------------------------------------

def run_phase(workers: list[Worker], ops: list[str], seed: int, seconds: float,
              findings_dir: Path, seen: set[str]) -> tuple[dict, dict]:
    """Random inputs from `seed` for `seconds`; every divergence minimized,
    printed and written to findings_dir."""
    rnd = random.Random(seed)
    counts = {op: 0 for op in ops}
    findings: dict[str, list[dict]] = {op: [] for op in ops}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        op = ops[sum(counts.values()) // 50 % len(ops)]
        batch = [generate(op, rnd) for _ in range(50)]
        answers = ask(workers, [(op, t) for t in batch])
        counts[op] += len(batch)
        for text, a in zip(batch, answers):
            if agree(op, a):
                continue
            small = minimize(workers, op, text)
            final = ask(workers, [(op, small)])[0]
            sig = op + json.dumps([comparable(op, x) for x in final], sort_keys=True)
            if sig in seen:
                continue
            seen.add(sig)
            f = {"op": op, "input": small, "original": text, "seed": seed,
                 "answers": dict(zip(("c", "ts", "py"), final))}
            f["vectors"] = as_vectors(op, small, f["answers"])
            findings[op].append(f)
            findings_dir.mkdir(exist_ok=True)
            name = hashlib.sha1(sig.encode()).hexdigest()[:12]
            (findings_dir / f"{op}-{name}.json").write_text(
                json.dumps(f, indent=1, ensure_ascii=False) + "\n")
            print(f"# DIVERGENCE {op} {json.dumps(small, ensure_ascii=True)[:300]}", flush=True)
            for lang, x in f["answers"].items():
                print(f"#   {lang}: {json.dumps(x, ensure_ascii=True)[:300]}", flush=True)
    return counts, findings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60, help="length of the run")
    ap.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    ap.add_argument("--random-seconds", type=float, default=0,
                    help="then a second run this long with a random seed (printed)")
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--numbers", type=int, default=0,
                    help="random doubles in the number sweep (every power of two always)")
    ap.add_argument("--tap", action="store_true", help="TAP lines, one per operation and run")
    ap.add_argument("--findings", default=str(HERE / "findings"))
    args = ap.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    for op in ops:
        if op not in OPS:
            sys.exit(f"diff: unknown operation {op} (known: {', '.join(OPS)})")
    phases = [(args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big"),
               args.seconds)]
    if args.random_seconds:
        phases.append((int.from_bytes(os.urandom(4), "big"), args.random_seconds))
    workers = start_workers(Path(args.build))
    seen: set[str] = set()
    test_no = 0
    failed = False
    total = divergences = 0

    def report(ok: bool, text: str) -> None:
        nonlocal test_no
        test_no += 1
        print(f"{'ok' if ok else 'not ok'} {test_no} - {text}" if args.tap
              else f"# {'ok' if ok else 'FAILED'}: {text}", flush=True)

    if args.numbers:
        n, bad = number_sweep(workers, args.numbers, phases[0][0])
        failed |= bool(bad)
        report(not bad, f"number sweep: {n} doubles (every power of two of both signs, "
                        f"{args.numbers} random: bit patterns, short decimals, their "
                        f"neighbours), {len(bad)} string forms disagree")
        for line in bad[:20]:
            print("#   " + line)
    for seed, seconds in phases:
        print(f"# seed {seed}: {seconds:g}s over {','.join(ops)}", flush=True)
        started = time.monotonic()
        counts, findings = run_phase(workers, ops, seed, seconds, Path(args.findings), seen)
        for op in ops:
            failed |= bool(findings[op])
            report(not findings[op], f"{op}: {counts[op]} inputs, {len(findings[op])} "
                                     f"divergences (seed {seed})")
        total += sum(counts.values())
        divergences += sum(len(v) for v in findings.values())
        print(f"# seed {seed}: {sum(counts.values())} inputs in "
              f"{time.monotonic() - started:.0f}s", flush=True)
    for w in workers:
        rc = w.close()
        failed |= rc != 0
        report(rc == 0, f"{w.name} worker exited with status {rc}")
        if rc:
            time.sleep(0.5)  # the stderr reader's last lines
            print("\n".join("#   " + line for line in
                            w.stderr.decode(errors="replace").splitlines()[-15:]))
    if args.tap:
        print(f"1..{test_no}")
    print(f"# summary: {total} inputs, {divergences} divergences"
          + (f"; findings in {args.findings}" if divergences else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
