"""The fault suite's browsers: N clients in one asyncio process, connected
through the balancer, speaking the hub's protocol the way client-js does
(SPEC 6-10). A share of them (`--sse-share`, default every third client
number) use client-js's Server-Sent Events transport (SPEC 6.1,
client-js/src/sse.ts) instead of a WebSocket: `GET /sse` with nothing in
the query, the `stream` event's conn and secret, every browser frame (the
`auth` frame, subscriptions, the ping) POSTed to `/sse/<conn>?secret=&n=`
one POST at a time, numbered, what queued meanwhile together; the stream
ending or a POST not answered 202 is a lost connection (1006), after which
client-js opens a new stream and resubscribes with `since` exactly as after
a WebSocket reconnect (it never uses Last-Event-ID). Of those, a share
(`--sse-bare-share`, default every other one) are instead a page with a bare
`EventSource` (SPEC 6.1's other client, `sse-bare` in the log): the token
and every subscription in the query of `GET /sse`, and on every reconnect
the same URL with `Last-Event-ID` = the last `id:` it saw, so the hub
computes where each subscription resumes; it POSTs only its pings. The
rest is common:

* a JWT (`auth` frame) per client, for a user the `user` context is bound to;
* random context subscriptions (`todos`, `user` {user_id: sub}, `doc`
  {org, id}) and channel subscriptions (`room` {room} with history, `feed`
  without);
* on every reconnect each context resumes with `since` = its resume point
  (client-js `point()`: its own ack's version, raised by the newest live
  invalidate frame of the context on this client), each channel with
  `since` = the epoch and last seq it processed; channel messages whose seq
  is not above the last one processed in the epoch are dropped;
* reconnects with full-jitter backoff, after 1012 (drain) after a random
  share of the drain delay; a `rate_limited` resume is retried 1.5 s later;
* while connected, a `ping` every `--ping-every` s on average (browser ->
  hub traffic all the time: over SSE a POST, which reaches any hub and is
  handed on through Redis, and ends the stream when it is not answered 202,
  as client-js's does -- so Redis faults reach SSE clients too).

Every frame that matters is written to a JSON-lines log for the checker.
"finish" on stdin: each client waits until it is connected and every
subscription is acked, then sends a ping and waits for its pong (everything
the hub queued before is in the log), and the process exits.

    python clients.py --url ws://127.0.0.1:8080/ --clients 200 --log c.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import traceback
import urllib.parse
from fractions import Fraction
from pathlib import Path

import jwt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fdsite  # noqa: E402  (constants only; Django is not set up here)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django"))
from mizan_hub.protocol import canonical_key  # noqa: E402  (stdlib only)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from hubtest import SseParser  # noqa: E402

from checker import matches  # noqa: E402
from publisher import DOCS, ORGS, ROOMS  # noqa: E402


def add_transport_options(ap: argparse.ArgumentParser) -> None:
    """Which clients run which transport, and the broken-client switch: the
    options of this script that run.py takes and hands on unchanged."""
    ap.add_argument("--sse-share", type=Fraction, default=Fraction(1, 3),
                    help="the share of clients on SSE, e.g. 1/3 (every third client number), "
                         "0 or 1")
    ap.add_argument("--sse-bare-share", type=Fraction, default=Fraction(1, 2),
                    help="of the SSE clients, the share that are a bare EventSource resuming "
                         "with Last-Event-ID (the others run client-js's transport)")
    ap.add_argument("--no-resume", nargs="?", const="all",
                    choices=("all", "ws", "sse", "sse-bare"),
                    help="a broken client: resubscribes without since (the checker must "
                         "catch it; a bare EventSource: sends no Last-Event-ID); `ws`, `sse` "
                         "or `sse-bare`: only the clients of that transport")


def newer(a: str, b: str) -> bool:
    """Whether version b is newer than a in the same epoch (client-js
    !notNewer(a, b)); versions of different epochs are not compared."""
    ea, _, na = a.partition(":")
    eb, _, nb = b.partition(":")
    return ea == eb and int(nb) > int(na)


def picked(n: int, share: Fraction) -> bool:
    """Whether number n is in the share: where floor(n * share) steps up
    (share 1/3: numbers 2, 5, 8, ...), the same choice whichever process runs
    the client."""
    return (n + 1) * share // 1 > n * share // 1


def transport(n: int, opts) -> str:
    """`ws`, `sse` (client-js over SSE) or `sse-bare` (a bare EventSource):
    the SSE clients are numbered among themselves for the second choice."""
    if not picked(n, opts.sse_share):
        return "ws"
    k = (n + 1) * opts.sse_share // 1 - 1  # this one's number among the SSE clients
    return "sse-bare" if picked(int(k), opts.sse_bare_share) else "sse"


class SseLost(Exception):
    """The stream ended or a POST failed: client-js's sseSocket end(1006)."""


class SseSocket:
    """client-js's sseSocket (client-js/src/sse.ts) on asyncio streams: the
    stream at the hub URL's origin + /sse (read with hubtest's SseParser), and
    the browser's frames POSTed in order, one POST at a time, each on a new
    connection to the balancer (so they reach any hub, which hands them on
    through Redis: SPEC 6.1)."""

    def __init__(self, url: str, timeout: float = 10, parser: SseParser | None = None):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.parser = parser or SseParser()
        self.reader = self.writer = None
        self.to = ""  # /sse/<conn>?secret=<secret>, once the stream named it
        self.sent_id: str | None = None  # the Last-Event-ID it opened with
        self.q: list[str] = []
        self.n = 0
        self.busy = False
        self.failed: str | None = None  # why a POST ended the connection
        self.pumping: asyncio.Task | None = None

    async def open(self, query: str = "", last_event_id: str | None = None) -> None:
        """GET /sse as an EventSource sends it (its Last-Event-ID when it has
        one); raises SseLost on a refusal."""
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout)
        lei = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.writer.write((f"GET /sse{query} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                           f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n{lei}\r\n")
                          .encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (h.split(":", 1) for h in lines if ":" in h)}
        if status != 200:
            raise SseLost(f"stream refused: {status}")
        if "chunked" in headers.get("transfer-encoding", ""):
            raise SseLost("a chunked stream (the hub's is close-delimited; what changed it?)")

    async def events(self):
        """The frames of the stream, parsed; ends when the stream does."""
        while True:
            try:
                line = await self.reader.readline()
            except (OSError, asyncio.IncompleteReadError):
                return
            if not line:
                return
            ev = self.parser.line(line)
            if ev is not None:
                yield ev["data"]

    def named(self, stream: dict) -> None:
        self.to = (f"/sse/{urllib.parse.quote(stream['conn'], safe='')}"
                   f"?secret={urllib.parse.quote(stream['secret'], safe='')}")
        self.pump()

    def send(self, text: str) -> None:
        self.q.append(text)
        self.pump()

    def pump(self) -> None:
        if self.busy or self.failed or not self.to or not self.q:
            return
        body, self.q = "\n".join(self.q), []
        self.busy = True
        self.n += 1
        self.pumping = asyncio.ensure_future(self.post(f"{self.to}&n={self.n}", body.encode()))

    async def post(self, target: str, body: bytes) -> None:
        try:
            status = await asyncio.wait_for(self.request(target, body), self.timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            status = f"{type(exc).__name__}"
        self.busy = False
        if status == 202:
            self.pump()
        else:
            self.fail(f"POST: {status}")

    async def request(self, target: str, body: bytes) -> int:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write((f"POST {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n").encode() + body)
            line = await reader.readline()
            return int(line.split()[1])
        finally:
            writer.close()

    def fail(self, why: str) -> None:
        """Ends the connection from this side (client-js end(1006, 'POST: ...'))."""
        if self.failed is None:
            self.failed = why
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.pumping is not None and not self.pumping.done() and \
                self.pumping is not asyncio.current_task():
            self.pumping.cancel()


class Sub:
    def __init__(self, context: str, params: dict):
        self.context, self.params = context, params
        self.key = canonical_key(context, params)
        self.acked = False  # ever acked (client-js s.a)
        self.v: str | None = None  # its own last ack's version (client-js s.v)
        self.pending = False  # subscribe sent on this connection, ack not yet


class Chan:
    def __init__(self, channel: str, params: dict):
        self.channel, self.params = channel, params
        self.key = canonical_key(channel, params)
        self.e: str | None = None  # epoch of the last processed message / ack
        self.q = 0  # last processed seq
        self.acked = False
        self.pending = False


class Client:
    def __init__(self, n: int, opts, log, rng: random.Random):
        self.n, self.opts, self.log, self.rng = n, opts, log, rng
        self.user = str(n % opts.users)
        self.subs = [Sub("user", {"user_id": self.user})]
        if rng.random() < 0.5:
            self.subs.append(Sub("todos", {}))
        for org, doc in {(str(rng.randrange(ORGS)), str(rng.randrange(DOCS)))
                         for _ in range(rng.randint(1, 3))}:
            self.subs.append(Sub("doc", {"org": org, "id": doc}))
        self.chans = [Chan("room", {"room": str(r)})
                      for r in rng.sample(range(ROOMS), rng.randint(1, 2))]
        if rng.random() < 0.3:
            self.chans.append(Chan("feed", {}))
        self.streamed: dict[str, str] = {}  # context -> newest live frame version
        self.ws = None  # a websockets connection, or an SseSocket
        self.transport = transport(n, opts)
        self.sse = self.transport != "ws"
        self.bare = self.transport == "sse-bare"
        self.no_resume = opts.no_resume in ("all", self.transport)
        # a bare EventSource's: it keeps the last id across reconnects
        self.parser = SseParser() if self.bare else None
        self.ready = False
        self.connected_at = 0.0
        self.bare_token = self.token()  # fixed in the page's EventSource URL
        self.finishing = False
        self.done = asyncio.Event()
        self.pong = asyncio.Event()
        self.stats = {"reconnects": 0, "connects": 0, "pings": 0, "pongs": 0}

    def write(self, record: dict) -> None:
        record["c"] = self.n
        record["t"] = time.time()
        self.log.write(json.dumps(record, separators=(",", ":")) + "\n")

    def connected(self, **note) -> None:
        """A connection is up (the checker's `conn` record): counted, logged, ready."""
        self.connected_at = time.monotonic()
        self.stats["connects"] += 1
        self.write({"k": "conn", **note})
        self.ready = True

    async def subscribe_all(self) -> None:
        """Every context and channel again, each resuming as client-js does."""
        for s in self.subs:
            await self.subscribe(s)
        for c in self.chans:
            await self.subscribe_channel(c)

    def token(self) -> str:
        now = int(time.time())
        return jwt.encode({"sub": self.user, "aud": fdsite.AUDIENCE, "iat": now,
                           "exp": now + 4 * 3600}, fdsite.JWT_KEY, algorithm="HS256",
                          headers={"kid": fdsite.KID})

    # -- what client-js sends

    def point(self, s: Sub) -> str | None:
        f = self.streamed.get(s.context)
        if s.v and f and not newer(s.v, f):
            return s.v
        return f or s.v

    async def send(self, frame: dict) -> None:
        text = json.dumps(frame, separators=(",", ":"))
        if self.sse:
            self.ws.send(text)
        else:
            await self.ws.send(text)

    async def subscribe(self, s: Sub) -> None:
        frame = {"action": "subscribe", "context": s.context, "params": s.params}
        if s.acked and not self.no_resume:
            since = self.point(s)
            if since:
                frame["since"] = since
        s.pending = True
        await self.send(frame)

    async def subscribe_channel(self, c: Chan) -> None:
        frame = {"action": "subscribe", "channel": c.channel, "params": c.params}
        if c.e is not None and not self.no_resume:
            frame["since"] = f"{c.e}:{c.q}"
        c.pending = True
        await self.send(frame)

    # -- the connection

    async def run(self) -> None:
        tries = 0
        await asyncio.sleep(self.rng.random() * self.opts.ramp)
        self.write({"k": "client", "tr": self.transport})
        for s in self.subs:
            self.write({"k": "sub", "s": s.key, "ctx": s.context, "p": s.params})
        for c in self.chans:
            self.write({"k": "csub", "s": c.key, "ch": c.channel, "p": c.params})
        while True:
            code = None
            try:
                code = await (self.sse_session() if self.sse else self.session())
            except (OSError, InvalidHandshake, InvalidStatus, asyncio.TimeoutError,
                    ConnectionClosed, SseLost, asyncio.IncompleteReadError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                self.write({"k": "fail", "e": type(exc).__name__, "m": str(exc)[:160]})
            except Exception as exc:  # a bug here or a frame it cannot read: say so, go on
                traceback.print_exc()
                self.write({"k": "bug", "e": repr(exc)})
            if self.sse and self.ws is not None:
                self.ws.close()
            self.ws = None
            self.ready = False
            if self.connected_at and time.monotonic() - self.connected_at >= 5:
                tries = 0
            self.connected_at = 0.0
            if code == 1012:
                delay = self.rng.random() * self.opts.drain_delay
            else:
                delay = self.rng.random() * min(self.opts.max_delay, 0.5 * 2 ** tries)
                tries += 1
            self.stats["reconnects"] += 1
            await asyncio.sleep(delay)

    async def session(self) -> int | None:
        async with connect(self.opts.url, compression=None, ping_interval=None,
                           open_timeout=10, close_timeout=2, max_size=None,
                           proxy=None) as ws:
            self.ws = ws
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
            hub = welcome["welcome"]["hub"]
            await self.send({"action": "auth", "token": self.token(), "ref": "auth"})
            authed = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if "authed" not in authed:
                self.write({"k": "err", "f": authed})
                await ws.close()
                return None
            self.connected(hub=hub)
            await self.subscribe_all()
            try:
                async for text in ws:
                    await self.on_frame(json.loads(text))
            except ConnectionClosed:
                pass
            self.write({"k": "close", "code": ws.close_code, "reason": ws.close_reason})
            return ws.close_code

    async def sse_session(self) -> int | None:
        """One stream, as client-js's connect() drives sseSocket: `auth` POSTed
        when the stream names itself, subscriptions once `authed`; the close
        event's code, or 1006 when the stream or a POST failed."""
        sock = self.ws = SseSocket(self.opts.url, parser=self.parser)
        if self.bare:
            await self.open_bare(sock)
        else:
            await sock.open()
        hub = None
        code, reason = 1006, "stream ended"
        async for f in sock.events():
            if "stream" in f:
                sock.named(f["stream"])
                if not self.bare:
                    sock.send(json.dumps({"action": "auth", "token": self.token(),
                                          "ref": "auth"}, separators=(",", ":")))
            elif "close" in f:
                code, reason = f["close"].get("code"), f["close"].get("reason")
                break
            elif "welcome" in f:
                hub = f["welcome"]["hub"]
                if self.bare:  # authenticated by the query's token; subscribed by its query
                    self.connected(hub=hub, lei=sock.sent_id)
                    for item in self.subs + self.chans:
                        item.pending = True
            elif "authed" in f:
                self.connected(hub=hub)
                await self.subscribe_all()
            elif not self.ready and "error" in f:
                self.write({"k": "err", "f": f})
                sock.close()
                return None
            else:
                await self.on_frame(f)
        sock.close()
        if sock.failed:
            reason = sock.failed
        self.write({"k": "close", "code": code, "reason": reason})
        return code

    async def open_bare(self, sock: SseSocket) -> None:
        """The page's EventSource: one URL for its whole life (the token and
        every subscription, without since, in the query), and on a reconnect
        the last id it saw as Last-Event-ID (none with --no-resume)."""
        args = [("subscribe", json.dumps({"context": s.context, "params": s.params},
                                         separators=(",", ":"))) for s in self.subs]
        args += [("subscribe", json.dumps({"channel": c.channel, "params": c.params},
                                          separators=(",", ":"))) for c in self.chans]
        args.append(("token", self.bare_token))
        lei = None if self.no_resume else self.parser.last_id
        sock.sent_id = lei
        await sock.open("?" + urllib.parse.urlencode(args, quote_via=urllib.parse.quote), lei)

    def all_acked(self) -> bool:
        return self.ready and not any(s.pending for s in self.subs) and \
            not any(c.pending for c in self.chans)

    async def pinger(self) -> None:
        """Browser -> hub traffic while connected: a ping now and then (its
        pong is counted; the finish barrier's is its own, `ref` "end")."""
        if self.opts.ping_every <= 0:
            return
        while not self.finishing:
            await asyncio.sleep(self.opts.ping_every * (0.5 + self.rng.random()))
            if self.ready and self.ws is not None and not self.finishing:
                self.stats["pings"] += 1
                try:
                    await self.send({"action": "ping", "ref": f"p{self.stats['pings']}"})
                except (ConnectionClosed, AttributeError):
                    pass

    async def on_frame(self, f: dict) -> None:
        if f.get("pong"):
            if f.get("ref") == "end":
                self.pong.set()
            else:
                self.stats["pongs"] += 1
        elif "error" in f and not f.get("subscribed"):
            self.write({"k": "err", "f": f})
            err = f["error"]
            code = err.get("code") if isinstance(err, dict) else None
            if code == "rate_limited":
                key = canonical_key(f.get("context") or f.get("channel"), f.get("params") or {})
                for item in self.subs + self.chans:
                    if item.key == key:
                        asyncio.get_running_loop().call_later(1.5, self.retry, item)
        elif f.get("subscribed"):
            if "context" in f:
                s = self.find(self.subs, f["context"], f.get("params"))
                first = not s.acked
                s.acked, s.pending, s.v = True, False, f.get("version")
                self.write({"k": "ack", "s": s.key, "v": s.v, "f": first})
            else:
                c = self.find(self.chans, f["channel"], f.get("params"))
                first = not c.acked
                if c.e != f["epoch"] or c.q < f["seq"]:
                    c.q = f["seq"]
                c.e = f["epoch"]
                c.acked, c.pending = True, False
                self.write({"k": "cack", "s": c.key, "e": c.e, "q": f["seq"], "f": first})
        elif "invalidate" in f:
            versions = f.get("versions") or {}
            reason = f.get("reason")
            if not reason:
                for ctx, v in versions.items():
                    old = self.streamed.get(ctx)
                    if old is None or newer(old, v) or old.partition(":")[0] != v.partition(":")[0]:
                        self.streamed[ctx] = v
            for entry in f["invalidate"]:
                ctx = entry if isinstance(entry, str) else entry["context"]
                for s in self.subs:
                    if matches(entry, s.context, s.params):
                        self.write({"k": "inv", "s": s.key, "v": versions.get(ctx), "r": reason})
        elif "gap" in f:
            g = f["gap"]
            key = canonical_key(g["channel"], g.get("params") or {})
            self.write({"k": "gap", "s": key, "from": g.get("from"), "to": g.get("to"),
                        "reason": g.get("reason")})
        elif "channel" in f and "seq" in f:
            c = self.find(self.chans, f["channel"], f.get("params"))
            if f["epoch"] == c.e and f["seq"] <= c.q:
                self.write({"k": "dup", "s": c.key, "e": f["epoch"], "q": f["seq"]})
                return
            c.e, c.q = f["epoch"], f["seq"]
            self.write({"k": "msg", "s": c.key, "e": c.e, "q": c.q,
                        "id": (f.get("data") or {}).get("id")})

    def find(self, items, name, params):
        key = canonical_key(name, params or {})
        for item in items:
            if item.key == key:
                return item
        raise AssertionError(f"client {self.n}: a frame for {key}, which it never subscribed")

    def retry(self, item) -> None:
        if self.ready and self.ws is not None:
            coro = self.subscribe(item) if isinstance(item, Sub) else self.subscribe_channel(item)
            asyncio.ensure_future(coro)

    async def finish(self, deadline: float) -> bool:
        """Waits until connected with every subscription acked, then a ping
        barrier: every frame the hub queued for it before is logged."""
        self.finishing = True
        while time.monotonic() < deadline:
            if self.all_acked():
                self.pong.clear()
                try:
                    await self.send({"action": "ping", "ref": "end"})
                    await asyncio.wait_for(self.pong.wait(), 5)
                    if self.all_acked():
                        self.write({"k": "done", "pings": self.stats["pings"],
                                    "pongs": self.stats["pongs"]})
                        return True
                except (ConnectionClosed, asyncio.TimeoutError, AttributeError):
                    pass  # (an SseSocket's send does not raise: a failed POST ends the stream)
            await asyncio.sleep(0.1)
        self.write({"k": "unfinished", "ready": self.ready})
        return False


async def amain(opts) -> int:
    log = open(opts.log, "a", buffering=1 << 16)
    rng = random.Random(opts.seed)
    clients = [Client(opts.first + i, opts, log, random.Random(rng.random()))
               for i in range(opts.clients)]
    tasks = [asyncio.ensure_future(c.run()) for c in clients]
    tasks += [asyncio.ensure_future(c.pinger()) for c in clients]
    print("started", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if line in ("finish", ""):
            break
    deadline = time.monotonic() + opts.finish_timeout
    ok = await asyncio.gather(*(c.finish(deadline) for c in clients))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        if c.ws is not None:
            try:
                if c.sse:
                    c.ws.close()
                else:
                    await asyncio.wait_for(c.ws.close(), 2)
            except Exception:
                pass
    log.flush()
    print(json.dumps({"finished": sum(ok), "clients": len(clients),
                      "sse_clients": sum(c.sse for c in clients),
                      "reconnects": sum(c.stats["reconnects"] for c in clients)}), flush=True)
    return 0 if all(ok) else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--first", type=int, default=0, help="number of the first client")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--log", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ramp", type=float, default=3.0, help="connects spread over this many s")
    ap.add_argument("--max-delay", type=float, default=5.0, help="backoff cap, s")
    ap.add_argument("--drain-delay", type=float, default=5.0, help="after 1012, s")
    ap.add_argument("--finish-timeout", type=float, default=60.0)
    ap.add_argument("--ping-every", type=float, default=2.0,
                    help="a ping frame (over SSE a POST) every this many s on average while "
                         "connected; 0: none")
    add_transport_options(ap)
    return asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
