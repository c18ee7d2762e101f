"""Paced publisher for the peers that are not fed by a plain Redis PUBLISH
(mh-publish does that for mizan-hub and Bun). Event i is due at start + i/rate;
when behind, events go back to back so the average rate holds (as mh-publish).

  publish.py --mode channels   --redis URL        group_send via channels_redis
  publish.py --mode nchan      --url http://H:P   POST /pub/<channel> (nchan publisher)
  publish.py --mode centrifugo --url http://H:P --api-key K   POST /api/publish

--template is mh-publish's ({ts} Unix ms with 3 decimals, {n} from 1,
{k} = n mod --keys); --channel names the group/channel/topic ({k} allowed,
and {q}/{r} = divmod(k, --split) for nchan's per-connection channel lists).
Prints one JSON object like mh-publish --json."""
import argparse
import asyncio
import http.client
import json
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--mode", required=True, choices=["channels", "nchan", "centrifugo"])
p.add_argument("--redis")
p.add_argument("--url")
p.add_argument("--api-key", default="")
p.add_argument("--rate", type=float, default=10)
p.add_argument("--duration", type=float, default=10)
p.add_argument("--keys", type=int, default=1000)
p.add_argument("--channel", default="bench")
p.add_argument("--split", type=int, default=1, help="{q},{r} in --channel = divmod(k, split)")
p.add_argument("--template", required=True)
a = p.parse_args()
count = int(a.rate * a.duration)


def render(n):
    k = str(n % a.keys)
    q, r = divmod(n % a.keys, a.split)
    ts = f"{time.time() * 1000:.3f}"
    return (a.channel.replace("{k}", k).replace("{q}", str(q)).replace("{r}", str(r)),
            a.template.replace("{ts}", ts).replace("{n}", str(n)).replace("{k}", k))


stats = {"mode": a.mode, "sent": 0, "errors": 0, "rate_target": a.rate, "max_lag_ms": 0.0,
         "first_error": None}


def lag(t0, i):
    late = time.monotonic() - (t0 + i / a.rate)
    stats["max_lag_ms"] = max(stats["max_lag_ms"], late * 1000)


def error(e):
    stats["errors"] += 1
    if stats["first_error"] is None:
        stats["first_error"] = str(e)[:300]


async def run_channels():
    from channels_redis.core import RedisChannelLayer
    layer = RedisChannelLayer(hosts=[a.redis])
    t0 = time.monotonic()
    for i in range(count):
        d = t0 + i / a.rate - time.monotonic()
        if d > 0:
            await asyncio.sleep(d)
        lag(t0, i)
        chan, text = render(i + 1)
        try:
            await layer.group_send(chan, {"type": "bench.event", "text": text})
            stats["sent"] += 1
        except Exception as e:  # noqa: BLE001 - counted and reported
            error(e)
    return time.monotonic() - t0


def run_http():
    host = a.url.split("//", 1)[1].rstrip("/")
    conn = http.client.HTTPConnection(host, timeout=10)
    t0 = time.monotonic()
    for i in range(count):
        d = t0 + i / a.rate - time.monotonic()
        if d > 0:
            time.sleep(d)
        lag(t0, i)
        chan, text = render(i + 1)
        if a.mode == "nchan":
            path, body, hdr = f"/pub/{chan}", text, {"Content-Type": "application/json"}
        else:
            path = "/api/publish"
            body = '{"channel":%s,"data":%s}' % (json.dumps(chan), text)
            hdr = {"Content-Type": "application/json", "X-API-Key": a.api_key}
        try:
            conn.request("POST", path, body=body, headers=hdr)
            r = conn.getresponse()
            data = r.read()
            if r.status >= 300 or (a.mode == "centrifugo" and b'"error"' in data):
                error(f"HTTP {r.status} {data[:200]!r}")
            else:
                stats["sent"] += 1
        except (OSError, http.client.HTTPException) as e:
            error(e)
            conn.close()
            conn = http.client.HTTPConnection(host, timeout=10)
    return time.monotonic() - t0


secs = asyncio.run(run_channels()) if a.mode == "channels" else run_http()
stats["seconds"] = round(secs, 3)
stats["rate_achieved"] = round(stats["sent"] / secs, 1) if secs > 0 else 0
stats["max_lag_ms"] = round(stats["max_lag_ms"], 3)
print(json.dumps(stats))
print(f"publish.py {a.mode}: {stats['sent']} sent, {stats['errors']} errors, "
      f"{stats['rate_achieved']}/s (target {a.rate:g}/s), max {stats['max_lag_ms']:.1f} ms behind",
      file=sys.stderr)
