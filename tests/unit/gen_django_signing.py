#!/usr/bin/env python3
"""Writes tests/unit/data/django_signing.json: signed_cookies session cookies
made by REAL Django (the repo's .venv), and what mh_djsign must say of each.

Every case is also checked against Django itself: signing.loads with the same
keys, salt, max_age and clock decides "ok" / SignatureExpired / BadSignature /
another exception, and the C expectation must agree with it — except the few
cases marked "deviation", where the hub is deliberately stricter (bounds,
strict base64, the JSON left to the caller). Django's answer is recorded in
"django" either way. Cookie-header cases are checked against Django's
parse_cookie the same way.

The clock is patched (time.time) and every input is fixed, so running it
again writes the identical file; --check regenerates in memory and exits 1
if the committed file differs. It also writes the seed corpus of the
fuzz_djsign libFuzzer target (signed with that target's FUZZ_KEY).

    .venv/bin/python tests/unit/gen_django_signing.py [--check]
"""
import argparse
import base64
import hashlib
import json
import os
import random
import sys
import zlib
from unittest import mock

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "data", "django_signing.json")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus", "fuzz_djsign")

KEY = "mizan-test-SECRET_KEY-5c1b0e9d7a4f4e2b8f3a6d1c0b9e8f7a-not-for-production"
OLD = "mizan-test-old-key-1-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
OLDER = "mizan-test-old-key-2-aaaabbbbccccddddeeeeffff00001111"
OTHER = "mizan-test-unrelated-key-99999999999999999999999999999"
UNICODE_KEY = "clé-secrète-ü-\u65e5\u672c-\U0001f511-mizan-test-key-0123456789"
FUZZ_KEY = "mizan-fuzz-djsign-key"  # tests/fuzz/fuzz_djsign.c
SALT = "django.contrib.sessions.backends.signed_cookies"
AGE = 1209600  # SESSION_COOKIE_AGE default
T0 = 1700000000
NOW = T0 + 3600
MAX_VALUE = 8192  # MH_DJSIGN_MAX_VALUE
MAX_JSON = 65536  # MH_DJSIGN_MAX_JSON

settings.configure(
    SECRET_KEY=KEY,
    SECRET_KEY_FALLBACKS=[OLD, OLDER],
    INSTALLED_APPS=["django.contrib.sessions"],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    USE_TZ=True,
)
django.setup()

from django.contrib.sessions.backends.signed_cookies import SessionStore  # noqa: E402
from django.core import signing  # noqa: E402
from django.http.cookie import parse_cookie  # noqa: E402
from django.test.utils import override_settings  # noqa: E402


def at(t):
    return mock.patch("time.time", return_value=float(t))


def session_cookie(data, t=T0, secret=KEY):
    """A cookie as SessionStore.save() makes it (signing.dumps, compress=True)."""
    with at(t), override_settings(SECRET_KEY=secret):
        s = SessionStore()
        for k, v in data.items():
            s[k] = v
        s.save()
        return s.session_key


def sign(payload, t=T0, secret=KEY, salt=SALT, timestamp=True):
    """Django's own signer over a crafted base64 part (and timestamp)."""
    cls = signing.TimestampSigner if timestamp else signing.Signer
    with at(t):
        return cls(key=secret, salt=salt, fallback_keys=[]).sign(payload)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def login(uid, sid):
    return {
        "_auth_user_id": str(uid),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": hashlib.sha256(b"hash-%d" % uid).hexdigest(),
        "_mizan_hub_sid": sid,
    }


def filler(n, seed):
    rnd = random.Random(seed)
    abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(abc[rnd.getrandbits(6)] for _ in range(n))


def django_verdict(value, keys, salt, max_age, now):
    """signing.loads exactly as SessionStore.load calls it."""
    with at(now):
        try:
            obj = signing.loads(
                value,
                key=keys[0],
                fallback_keys=keys[1:],
                salt=salt or SALT,
                max_age=max_age if max_age > 0 else None,
            )
            return "ok", obj
        except signing.SignatureExpired:
            return "SignatureExpired", None
        except signing.BadSignature:
            return "BadSignature", None
        except Exception as e:  # ValueError, binascii.Error, zlib.error, JSONDecodeError
            return type(e).__name__, None


def payload_text(value):
    """The JSON bytes the hub returns: base64 part decoded (and inflated)."""
    part = value.rsplit(":", 2)[0]
    data = signing.b64_decode(part.lstrip(".").encode())
    if part.startswith("."):
        data = zlib.decompress(data)
    return data


# Which Django outcomes each expected C reason is compatible with.
COMPAT = {
    "ok": {"ok"},
    "expired": {"SignatureExpired"},
    "bad_signature": {"BadSignature"},
    "malformed": {"BadSignature", "ValueError", "IndexError"},
    "bad_payload": {"Error", "error", "JSONDecodeError", "UnicodeDecodeError"},
}


def case(name, value, expect, keys=(KEY,), salt=None, max_age=AGE, now=NOW, deviation=None):
    keys = list(keys)
    verdict, obj = django_verdict(value, keys, salt, max_age, now)
    c = {"name": name, "value": value, "keys": keys, "salt": salt, "max_age": max_age, "now": now}
    c["expect"] = expect
    c["django"] = verdict
    if deviation:
        c["deviation"] = deviation
        assert verdict not in COMPAT[expect], (name, verdict, "not a deviation")
    else:
        assert verdict in COMPAT[expect], (name, expect, verdict)
    if expect == "ok":
        text = payload_text(value)
        if not deviation:
            assert json.loads(text.decode("latin-1")) == obj, name
            if (salt or SALT) == SALT and max_age > 0:
                # the real session backend agrees (it turns errors into {})
                with at(now), override_settings(
                    SECRET_KEY=keys[0], SECRET_KEY_FALLBACKS=keys[1:], SESSION_COOKIE_AGE=max_age
                ):
                    assert SessionStore(session_key=value).load() == obj, name
        if len(text) > 2048:
            c["json_len"] = len(text)
            c["json_sha256"] = hashlib.sha256(text).hexdigest()
        else:
            c["json"] = text.decode("latin-1")
    return c


def exact_length_cookie(length):
    """A real session cookie exactly 'length' characters long."""
    make = lambda n, seed: session_cookie({**login(7, "sid-len"), "blob": filler(n, seed)})  # noqa: E731
    for seed in range(20):
        n = length
        for _ in range(30):  # step the filler towards the length, then look around
            v = make(n, seed)
            if len(v) == length:
                return v
            n += (length - len(v)) // 2 or (1 if len(v) < length else -1)
        for d in range(-40, 41):
            v = make(n + d, seed)
            if len(v) == length:
                return v
    raise SystemExit("no cookie of length %d" % length)


def build_cases():
    cs = []
    small = session_cookie({"_auth_user_id": "5", "_mizan_hub_sid": "Q3vZ8kLm2pXw"})
    assert not small.startswith(".")
    cs.append(case("small session, not compressed", small, "ok"))

    big = session_cookie({**login(6, "hubsid-big-0002"), "cart": ["item-%d" % (i % 7) for i in range(200)]})
    assert big.startswith(".")
    cs.append(case("large session, compressed ('.' prefix)", big, "ok"))

    cs.append(case("empty session", session_cookie({}), "ok"))
    uni = session_cookie({"name": "Zoë — \u65e5\u672c\u8a9e \u2713 \U0001f389", "q": "\"\\/\n\t"})
    cs.append(case("unicode and escapes in session data (JSON \\u escapes)", uni, "ok"))
    typed = session_cookie({"n": 12345678901234567, "f": 1.5, "t": True, "z": None, "l": [], "o": {}})
    cs.append(case("every JSON type", typed, "ok"))

    # keys: SECRET_KEY, then the fallbacks, in order
    cs.append(case("signed with the first fallback", session_cookie(login(5, "s"), secret=OLD), "ok",
                   keys=[KEY, OLD, OLDER]))
    cs.append(case("signed with the second fallback", session_cookie(login(5, "s"), secret=OLDER), "ok",
                   keys=[KEY, OLD, OLDER]))
    cs.append(case("fallback not configured", session_cookie(login(5, "s"), secret=OLD), "bad_signature",
                   keys=[KEY]))
    cs.append(case("wrong key", small, "bad_signature", keys=[OTHER]))
    cs.append(case("wrong key, right one is a later fallback", small, "ok", keys=[OTHER, OLD, KEY]))
    cs.append(case("unicode SECRET_KEY (UTF-8 bytes)", session_cookie(login(5, "u"), secret=UNICODE_KEY),
                   "ok", keys=[UNICODE_KEY]))

    # tampering: anything under the signature, and the signature itself
    b, ts, sig = small.split(":")
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]  # noqa: E731
    cs.append(case("tampered payload", "%s:%s:%s" % (flip(b, 3), ts, sig), "bad_signature"))
    cs.append(case("tampered timestamp", "%s:%s:%s" % (b, flip(ts, len(ts) - 1), sig), "bad_signature"))
    cs.append(case("tampered signature (last char)", "%s:%s:%s" % (b, ts, flip(sig, 42)), "bad_signature"))
    cs.append(case("tampered signature (first char)", "%s:%s:%s" % (b, ts, flip(sig, 0)), "bad_signature"))
    cs.append(case("signature truncated by one", small[:-1], "bad_signature"))
    cs.append(case("signature with one extra char", small + "A", "bad_signature"))
    cs.append(case("signature padded with '='", small + "=", "bad_signature"))
    cs.append(case("empty signature", "%s:%s:" % (b, ts), "bad_signature"))
    cs.append(case("compression flag removed", big[1:], "bad_signature"))
    cs.append(case("compression flag added", "." + small, "bad_signature"))
    cs.append(case("trailing colon", small + ":", "bad_signature"))
    cs.append(case("NUL byte appended", small + "\0", "bad_signature"))
    cs.append(case("non-ASCII byte in the payload", "é" + small, "bad_signature"))
    cs.append(case("signature of another value", "%s:%s:%s" % (b, ts, big.rsplit(":", 1)[1]),
                   "bad_signature"))
    cs.append(case("truncated to payload and timestamp", "%s:%s" % (b, ts), "malformed"))
    cs.append(case("truncated inside the payload", small[: len(b) // 2], "malformed"))
    cs.append(case("no timestamp (payload:signature)", "%s:%s" % (b, sig), "malformed"))
    cs.append(case("empty", "", "malformed"))
    cs.append(case("only colons", "::", "bad_signature"))
    cs.append(case("garbage", "not a cookie at all", "malformed"))

    # time: max_age against the base62 timestamp
    cs.append(case("expired by one second", small, "expired", now=T0 + AGE + 1))
    cs.append(case("exactly max_age old", small, "ok", now=T0 + AGE))
    cs.append(case("short max_age", small, "expired", max_age=60, now=T0 + 61))
    cs.append(case("max_age 0: not checked", small, "ok", max_age=0, now=T0 + 10 * AGE))
    cs.append(case("signed in the future (Django accepts)", small, "ok", now=T0 - 86400))
    neg = session_cookie({"x": 1}, t=-100)
    assert neg.split(":")[1].startswith("-")
    cs.append(case("negative timestamp (base62 '-')", neg, "ok", max_age=0))
    cs.append(case("negative timestamp, max_age checked", neg, "expired", now=T0))

    # salts: the session salt is the default; another salt never verifies
    with at(T0):
        other_salt = signing.dumps(login(5, "s"), salt="mizan.other", compress=True)
        plain = signing.dumps(login(5, "s"), compress=True)
        cookie_signer = signing.get_cookie_signer(salt="sessionid").sign("e30")
    cs.append(case("another salt", other_salt, "bad_signature"))
    cs.append(case("another salt, configured", other_salt, "ok", salt="mizan.other"))
    cs.append(case("signing.dumps default salt", plain, "bad_signature"))
    cs.append(case("set_signed_cookie-style value (cookie signer)", cookie_signer, "bad_signature"))

    # signed by Django, but the payload does not decode
    cs.append(case("signed, zlib data corrupt", sign("." + b64(b"x\x9c" + b"\xff" * 20)), "bad_payload"))
    z = zlib.compress(json.dumps(login(5, "s")).encode())
    cs.append(case("signed, zlib stream truncated", sign("." + b64(z[:-6])), "bad_payload"))
    cs.append(case("signed, raw deflate (no zlib header)", sign("." + b64(z[2:-4])), "bad_payload"))
    cs.append(case("signed, gzip instead of zlib", sign("." + b64(b"\x1f\x8b\x08\x00" + z)), "bad_payload"))
    cs.append(case("signed, zlib with trailing bytes (Python ignores them)", sign("." + b64(z + b"junk")),
                   "ok"))
    cs.append(case("signed, compressed flag on plain base64", sign("." + b64(b'{"a":1}')), "bad_payload"))
    cs.append(case("signed, base64 of 4k+1 characters", sign("e30Ae"), "bad_payload"))
    cs.append(case("signed, empty payload", sign(""), "bad_payload"))
    cs.append(case("signed, empty compressed payload", sign("."), "bad_payload"))
    cs.append(case("signed, bad base62 timestamp", sign("e30:1r3!", timestamp=False), "malformed"))
    cs.append(case("signed, empty timestamp", sign("e30:", timestamp=False), "malformed"))
    cs.append(case("signed, base62 '-' alone is 0 (Django quirk)", sign("e30:-", timestamp=False), "ok",
                   max_age=0))
    cs.append(case("signed, no timestamp at all", sign("e30", timestamp=False), "malformed"))
    cs.append(case("signed, base64 with a non-alphabet char", sign("e3!0="), "bad_payload",
                   deviation="Python's b64decode drops characters outside the alphabet; "
                   "the hub refuses them (Django never signs such a value)"))
    cs.append(case("signed, timestamp beyond int64", sign("e30:" + "z" * 12, timestamp=False),
                   "malformed", max_age=0,
                   deviation="Python's integers are unbounded; the hub's timestamp is int64"))
    cs.append(case("signed, not JSON", sign(b64(b"not json")), "ok",
                   deviation="the hub returns the bytes; the caller parses the JSON"))

    # bounds: the value's length, the decompressed size
    v = exact_length_cookie(MAX_VALUE)
    cs.append(case("value of exactly %d bytes" % MAX_VALUE, v, "ok"))
    v = exact_length_cookie(MAX_VALUE + 2)  # no base64 part is 4k+1 long: MAX_VALUE + 1 cannot be
    cs.append(case("value of %d bytes" % (MAX_VALUE + 2), v, "malformed",
                   deviation="the hub bounds the value (browsers keep 4096-byte cookies)"))
    j = session_cookie({"f": "a" * (MAX_JSON - 8)})
    assert len(payload_text(j)) == MAX_JSON
    cs.append(case("session JSON of exactly %d bytes" % MAX_JSON, j, "ok"))
    j = session_cookie({"f": "a" * (MAX_JSON - 7)})
    cs.append(case("session JSON of %d bytes" % (MAX_JSON + 1), j, "bad_payload",
                   deviation="the hub bounds the decompressed session"))
    bomb = zlib.compress(b'{"x":"' + b" " * (4 << 20) + b'"}', 9)
    v = sign("." + b64(bomb))
    assert len(v) <= MAX_VALUE, len(v)
    cs.append(case("zlib bomb: 4 MiB from %d bytes, validly signed" % len(v), v, "bad_payload",
                   deviation="Django inflates without a limit"))
    return cs


def build_cookie_cases():
    s = "sid-value:1r31eq:sig"
    hs = [
        ("only cookie", "sessionid=%s" % s, "sessionid"),
        ("first", "sessionid=%s; csrftoken=abc; theme=dark" % s, "sessionid"),
        ("middle", "csrftoken=abc; sessionid=%s; theme=dark" % s, "sessionid"),
        ("last", "csrftoken=abc;sessionid=%s" % s, "sessionid"),
        ("suffix of another name", "xsessionid=evil; sessionid=%s; sessionidx=evil2" % s, "sessionid"),
        ("only a longer name", "xsessionid=evil; sessionidx=1", "sessionid"),
        ("spaces and tabs around", "  a=1 ;\t sessionid \t=  %s  ; b=2" % s, "sessionid"),
        ("quoted value", 'a=1; sessionid="%s"' % s, "sessionid"),
        ("lone quote kept", 'sessionid="abc', "sessionid"),
        ("empty value", "a=1; sessionid=; b=2", "sessionid"),
        ("empty quoted value", 'sessionid=""', "sessionid"),
        ("absent", "a=1; b=2", "sessionid"),
        ("empty header", "", "sessionid"),
        ("duplicate: the last one wins", "sessionid=first; sessionid=second", "sessionid"),
        ("value with '='", "sessionid=a=b==", "sessionid"),
        ("part without '='", "sessionid; a=1", "sessionid"),
        ("name is case-sensitive", "SessionId=abc", "sessionid"),
        ("trailing semicolons", "sessionid=abc;;; ", "sessionid"),
        ("comma is not a separator", "a=1, sessionid=abc", "sessionid"),
    ]
    out = []
    for name, header, cname in hs:
        got = parse_cookie(header).get(cname)
        out.append({"name": name, "header": header, "cookie": cname, "value": got})
    return out


def corpus():
    """Seeds for fuzz_djsign: cookies signed with FUZZ_KEY (as the target
    verifies them), their unsigned 'payload:timestamp' halves (the target
    signs those itself) and Cookie headers."""
    seeds = [
        session_cookie(login(5, "fz-1"), secret=FUZZ_KEY),
        session_cookie({**login(6, "fz-2"), "l": list(range(100))}, secret=FUZZ_KEY),
        session_cookie({"name": "Zoë \u2713"}, secret=FUZZ_KEY),
        session_cookie({}, secret=FUZZ_KEY),
        sign("." + b64(zlib.compress(b'{"x":"' + b" " * 200000 + b'"}', 9)), secret=FUZZ_KEY),
        sign("." + b64(zlib.compress(b'{"a":1}') + b"tail"), secret=FUZZ_KEY),
        sign("e30:-1c", timestamp=False, secret=FUZZ_KEY),
    ]
    seeds += [s.rsplit(":", 1)[0] for s in seeds[:5]]
    seeds += ["csrftoken=abc; sessionid=%s; theme=dark" % seeds[0],
              'sessionid="%s"' % seeds[1]]
    return {hashlib.sha1(s.encode()).hexdigest(): s.encode() for s in seeds}


def render():
    doc = {
        "about": "Django %s signed_cookies session cookies; made by tests/unit/gen_django_signing.py, "
                 "do not edit" % django.__version__,
        "session_salt": SALT,
        "default_max_age": AGE,
        "cases": build_cases(),
        "cookies": build_cookie_cases(),
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = ap.parse_args()
    text = render()
    seeds = corpus()
    if args.check:
        bad = []
        try:
            with open(OUT, encoding="ascii") as f:
                if f.read() != text:
                    bad.append(OUT)
        except FileNotFoundError:
            bad.append(OUT)
        for name, data in seeds.items():
            p = os.path.join(CORPUS, name)
            if not os.path.exists(p) or open(p, "rb").read() != data:
                bad.append(p)
        for p in bad:
            print("out of date: %s (run %s)" % (os.path.relpath(p, ROOT), os.path.relpath(__file__, ROOT)))
        sys.exit(1 if bad else 0)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="ascii") as f:
        f.write(text)
    os.makedirs(CORPUS, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)
    print("wrote %s (%d cases) and %d seeds" % (os.path.relpath(OUT, ROOT), text.count('"expect"'), len(seeds)))


if __name__ == "__main__":
    main()
