"""The inbound worker: browser ``message``/``rpc``/``ctx`` frames, handled in Django.

Hubs append one entry per such frame to the ``{prefix}in`` stream (SPEC
section 11). Workers share a consumer group, so each entry goes to one of
them; an entry is acknowledged (``XACK``) only after it was handled and its
reply published, so a worker that dies mid-entry leaves it pending, and
another worker claims it (``XAUTOCLAIM``) once it has been idle longer than
``CLAIM_IDLE_MS``: at-least-once. A handler may therefore run twice for one
frame; make handlers idempotent where that matters.

With ``REDIS_SHARDS`` (SPEC section 11.1) hubs append each connection's
frames to ``{prefix}in`` on the shard of the connection's id: a worker
reads the stream of every shard (one reading thread per shard) and answers
on the shard it read the entry from; hubs listen on every shard.

Replies go to the hub that holds the connection, on ``{prefix}hub:{hub id}``:
``{"v":1,"kind":"reply","conn":...,"frame":{"id":...,"ok":true,"data":...}}``.
A handler's exception becomes ``"ok": false`` with an ``INTERNAL`` error and a
log line; the worker goes on.

Between reads the worker also relays the publishing outbox (at most every
``RELAY_EVERY`` seconds): events that Django processes could not publish
when they committed (Redis away, a process killed after its commit) reach
Redis without a separate ``mizan_hub_relay`` process.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import close_old_connections
from django.http import Http404, HttpResponseBase

from . import conf, handlers, izana_compat, outbox, protocol, stats
from .connection import get_redis, key, shard_count
from .direct import _jsonable, hub_channel
from .handlers import HubRequest, Message, RpcError

logger = logging.getLogger("mizan_hub.worker")

KINDS = ("message", "rpc", "ctx")

#: Seconds between two outbox relays of a worker (see mizan_hub.outbox), and
#: the most rows one of them publishes (sooner again when rows are left).
RELAY_EVERY = 1.0
RELAY_MAX_ROWS = 1024


class BadEntry(ValueError):
    """A stream entry that breaks SPEC section 11: acknowledged and dropped."""


def _error(code: str, message: str, details: Any = None) -> dict:
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return error


def _settle(result: Any) -> Any:
    """An ``async def`` handler's result: its coroutine run to the end (on a
    loop of its own in this worker thread; Django's async ORM and
    ``sync_to_async`` work in it as in an async view)."""
    if inspect.isawaitable(result):
        async def wait():
            return await result
        return asyncio.run(wait())
    return result


def _from_response(response: HttpResponseBase) -> dict:
    """What a view decorator's answer means for a call: login_required's
    redirect and a 401 are UNAUTHORIZED, a 403 FORBIDDEN, a 404 NOT_FOUND,
    another 4xx BAD_REQUEST, a 5xx INTERNAL; a 2xx JSON body is the data."""
    status = response.status_code
    if 200 <= status < 300:
        body = getattr(response, "content", b"")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = body.decode("utf-8", "replace")
        return {"ok": True, "data": _jsonable(data)}
    if status in (301, 302, 303, 307, 308) or status == 401:
        return {"ok": False, "error": _error("UNAUTHORIZED", "authentication required")}
    code = {403: "FORBIDDEN", 404: "NOT_FOUND"}.get(
        status, "BAD_REQUEST" if 400 <= status < 500 else "INTERNAL")
    return {"ok": False, "error": _error(code, f"HTTP {status}")}


class Worker:
    """One consumer of the group. ``run()`` loops until :meth:`stop`.

    With ``concurrency`` > 1 (``WORKER["CONCURRENCY"]``, ``--concurrency``)
    the entries of one read are handled by that many threads at once, each
    acknowledged when done: handlers must then be thread-safe, and two
    messages of one connection may be handled out of order."""

    def __init__(self, *, consumer: str | None = None, client: redis.Redis | None = None,
                 relay: bool = True, concurrency: int | None = None, shard: int | None = None):
        options = conf.get("WORKER")
        self.concurrency = max(1, int(concurrency or options.get("CONCURRENCY", 1)))
        self._pool = (ThreadPoolExecutor(self.concurrency, thread_name_prefix="mizan-hub-worker")
                      if self.concurrency > 1 else None)
        # shard None: every shard (this one reads the first, run() starts a
        # reader per other shard); a number: that shard's stream only
        self.shard = shard
        self.client = client or get_redis(shard or 0)
        self._readers: list[Worker] = []
        if client is None and shard is None:
            self._readers = [Worker(consumer=consumer, relay=False, concurrency=concurrency,
                                    shard=i) for i in range(1, shard_count())]
        self.stream = key("in")
        self.group = options["GROUP"]
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.block_ms = int(options["BLOCK_MS"])
        self.count = int(options["COUNT"])
        self.claim_idle_ms = int(options["CLAIM_IDLE_MS"])
        self.max_rpc_age_ms = int(options["MAX_RPC_AGE_MS"])
        self._stop = threading.Event()
        self._next_claim = 0.0
        self.relay = relay
        self._next_relay = 0.0
        self._relay_error: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def stop(self) -> None:
        """Finish the entry in hand, then return from :meth:`run`."""
        self._stop.set()
        for reader in self._readers:
            reader.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def ensure_group(self) -> None:
        """Create the group (and the stream) unless they exist. A new group
        starts at the stream's beginning: entries queued while no worker ran
        are handled (stale rpc/ctx ones are skipped, see MAX_RPC_AGE_MS)."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self) -> None:
        threads = [threading.Thread(target=reader._run_reader, name=f"mizan-hub-shard-{i + 1}",
                                    daemon=True) for i, reader in enumerate(self._readers)]
        for thread in threads:
            thread.start()
        try:
            self._run_loop()
        finally:
            for reader in self._readers:
                reader.stop()
            for thread in threads:
                thread.join()

    def _run_reader(self) -> None:
        try:
            self._run_loop()
        except Exception:  # a reader that dies must say so; the others go on
            logger.exception("mizan-hub worker: the reader of shard %s stopped", self.shard)
        finally:
            close_old_connections()  # this thread's own database connection

    def _run_loop(self) -> None:
        where = f" on shard {self.shard or 0}" if shard_count() > 1 else ""
        logger.info("mizan-hub worker %s reading %s%s (group %s)", self.consumer,
                    self.stream, where, self.group)
        backoff = 0.1
        group_ready = False
        while not self.stopping:
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                self.relay_outbox()
                self.step()
                backoff = 0.1
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted under us
                    group_ready = False
                    continue
                raise
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                logger.warning("mizan-hub worker: Redis unavailable (%s); retrying in %.1fs",
                               exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        logger.info("mizan-hub worker %s stopped", self.consumer)

    def step(self) -> int:
        """Claim what dead workers left (when due), then read and handle one
        batch of new entries. Returns how many entries were handled."""
        handled = 0
        now = time.monotonic()
        if now >= self._next_claim:
            handled += self.claim()
            self._next_claim = now + min(max(self.claim_idle_ms / 2000, 0.1), 30.0)
        due = self._next_claim
        if self.relay and self._next_relay:  # run() relays: wake up for it
            due = min(due, self._next_relay)
        block = max(1, min(self.block_ms, int((due - time.monotonic()) * 1000) or 1))
        response = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                          count=self.count, block=block)
        for _stream, entries in response or []:
            if self._pool is not None:
                # at most `concurrency` at once, all done before the next read
                done = list(self._pool.map(lambda e: self._handle_in_thread(*e), entries))
                handled += len(done)
                continue
            for entry_id, fields in entries:
                self.handle_entry(entry_id, fields)
                handled += 1
                if self.stopping:
                    return handled
        return handled

    def _handle_in_thread(self, entry_id: Any, fields: dict) -> None:
        try:
            self.handle_entry(entry_id, fields)
        finally:
            close_old_connections()  # this thread's own database connection

    def relay_outbox(self) -> int:
        """Publish what the outbox holds (when due). Returns rows published.
        A failure is logged; the rows stay queued for the next try."""
        if not self.relay or time.monotonic() < self._next_relay:
            return 0
        self._next_relay = time.monotonic() + RELAY_EVERY
        published = 0
        try:
            for alias in outbox.databases():
                # bounded, so a backlog does not hold up the inbound frames;
                # what is left goes out on the next turn of the loop
                result = outbox.relay(alias, block=False, max_rows=RELAY_MAX_ROWS)
                published += result.published
                if result.limited:
                    self._next_relay = time.monotonic()
            self._relay_error = None
        except Exception as exc:  # e.g. the table not migrated yet: say so once
            if str(exc) != self._relay_error:
                logger.error("mizan-hub worker: relaying the outbox failed: %s", exc,
                             exc_info=True)
            self._relay_error = str(exc)
        finally:
            close_old_connections()
        return published

    def claim(self) -> int:
        """Take over entries pending longer than CLAIM_IDLE_MS (their worker
        died or hangs) and handle them. Returns how many were handled."""
        handled = 0
        start = "0-0"
        while not self.stopping:
            result = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                            min_idle_time=self.claim_idle_ms,
                                            start_id=start, count=self.count)
            start, entries = result[0], result[1]
            for entry_id, fields in entries:
                stats.incr("worker_claimed")
                logger.info("mizan-hub worker %s claimed %s", self.consumer,
                            entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
                if fields is None:  # trimmed from the stream meanwhile
                    self.client.xack(self.stream, self.group, entry_id)
                    continue
                self.handle_entry(entry_id, fields)
                handled += 1
                if self.stopping:
                    break
            if start in (b"0-0", "0-0"):
                break
        self._forget_idle_consumers()
        return handled

    def _forget_idle_consumers(self) -> None:
        """Every worker process is a new consumer name; drop the ones gone
        long ago that hold nothing, so XINFO stays readable."""
        limit = max(self.claim_idle_ms * 10, 3600_000)
        try:
            for info in self.client.xinfo_consumers(self.stream, self.group):
                name = info["name"]
                name = name.decode() if isinstance(name, bytes) else name
                if name != self.consumer and info["pending"] == 0 and info["idle"] > limit:
                    self.client.xgroup_delconsumer(self.stream, self.group, name)
        except redis.ResponseError:
            pass

    # -- one entry ---------------------------------------------------------

    def handle_entry(self, entry_id: Any, fields: dict) -> None:
        """Handle, publish the reply, acknowledge. A Redis error while
        publishing leaves the entry pending (it is claimed again later)."""
        try:
            outgoing = self.dispatch(fields)
        except BadEntry as exc:
            stats.incr("worker_bad_entries")
            logger.error("mizan-hub worker: dropping bad entry %r: %s", entry_id, exc)
            outgoing = []
        for channel, text in outgoing:
            self.client.publish(channel, text.encode("utf-8"))
        self.client.xack(self.stream, self.group, entry_id)

    def dispatch(self, fields: dict) -> list[tuple[str, str]]:
        """The envelopes (channel, text) that answer one entry."""
        entry = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        text = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                for k, v in entry.items()}
        if text.get("v") != "1":
            raise BadEntry(f"v must be 1, got {text.get('v')!r}")
        kind = text.get("kind")
        if kind not in KINDS:
            raise BadEntry(f"unknown kind {kind!r}")
        hub, conn = text.get("hub", ""), text.get("conn", "")
        if not hub or not conn:
            raise BadEntry("hub and conn are required")
        try:
            identity = json.loads(text.get("identity", "null"))
            frame = protocol.decode_frame(entry.get("body", b""))
        except (ValueError, protocol.ProtocolError) as exc:
            raise BadEntry(f"bad identity or body: {exc}") from None
        if identity is not None and not (isinstance(identity, dict)
                                         and isinstance(identity.get("sub"), str)):
            raise BadEntry("identity must be null or {\"sub\": string, ...}")
        if frame["action"] != kind:
            raise BadEntry(f"kind {kind!r} carries a {frame['action']!r} frame")
        try:
            ts = float(text["ts"]) if "ts" in text else None
        except ValueError:
            ts = None
        request = HubRequest(identity=identity, hub=hub, conn=conn, ts=ts, frame=frame,
                             addr=text.get("addr") or None)

        if kind != "message" and ts is not None and self.max_rpc_age_ms > 0 \
                and time.time() * 1000 - ts > self.max_rpc_age_ms:
            stats.incr("worker_skipped_stale")
            logger.info("mizan-hub worker: %s %r is older than MAX_RPC_AGE_MS, skipped",
                        kind, frame["id"])
            return []

        close_old_connections()
        try:
            if kind == "message":
                frames = self.on_message(request, frame)
                return [(hub_channel(hub), protocol.encode_envelope(
                    {"kind": "send", "conn": conn, "frame": f})) for f in frames]
            reply = self.on_call(request, frame)
        finally:
            close_old_connections()
        stats.incr("worker_handled")
        try:
            text_out = protocol.encode_envelope({"kind": "reply", "conn": conn, "frame": reply})
        except protocol.ProtocolError as exc:  # data JSON cannot carry, too deep...
            logger.error("mizan-hub worker: reply to %r cannot be sent: %s", frame["id"], exc)
            text_out = protocol.encode_envelope({"kind": "reply", "conn": conn, "frame": {
                "id": frame["id"], "ok": False,
                "error": _error("INTERNAL", "the reply could not be encoded")}})
        return [(hub_channel(hub), text_out)]

    def on_message(self, request: HubRequest, frame: dict) -> list[dict]:
        """Run the channel's handler; returns frames for the sender (an error
        frame when there is no handler or it failed)."""
        channel, params = frame["channel"], frame["params"]
        handler = handlers.get_channel_handler(channel)
        try:
            if handler is not None:
                _settle(handler(request, Message(channel, params, frame["data"])))
            elif not izana_compat.handle_message(request, channel, params, frame["data"]):
                logger.warning("mizan-hub worker: no handler for channel %r", channel)
                return [{"error": _error("not_found", f"no handler for channel {channel!r}"),
                         "channel": channel, "params": params}]
        except Exception:
            stats.incr("worker_handler_errors")
            logger.exception("mizan-hub worker: handler of channel %r failed", channel)
            return [{"error": _error("internal", "the message handler failed"),
                     "channel": channel, "params": params}]
        stats.incr("worker_handled")
        return []

    def on_call(self, request: HubRequest, frame: dict) -> dict:
        """The rpc reply frame of an ``rpc`` or ``ctx`` frame."""
        call_id = frame["id"]
        try:
            if frame["action"] == "rpc":
                data = self._rpc(request, frame)
            else:
                data = self._ctx(request, frame)
            if isinstance(data, izana_compat.Reply):
                return {"id": call_id, **data.frame}
            if isinstance(data, HttpResponseBase):
                return {"id": call_id, **_from_response(data)}
            return {"id": call_id, "ok": True, "data": _jsonable(data)}
        except RpcError as exc:
            return {"id": call_id, "ok": False, "error": _error(exc.code, exc.message, exc.details)}
        except (PermissionDenied, PermissionError) as exc:
            return {"id": call_id, "ok": False,
                    "error": _error("FORBIDDEN", str(exc) or "permission denied")}
        except (ObjectDoesNotExist, Http404) as exc:
            return {"id": call_id, "ok": False,
                    "error": _error("NOT_FOUND", str(exc) or "not found")}
        except ValidationError as exc:
            return {"id": call_id, "ok": False,
                    "error": _error("BAD_REQUEST", "; ".join(exc.messages))}
        except Exception as exc:
            stats.incr("worker_handler_errors")
            logger.exception("mizan-hub worker: %s %r failed", frame["action"],
                             frame.get("fn") or frame.get("context"))
            message = "internal error"
            if settings.DEBUG:
                message += f": {type(exc).__name__}: {exc}"
            return {"id": call_id, "ok": False, "error": _error("INTERNAL", message)}

    def _rpc(self, request: HubRequest, frame: dict) -> Any:
        fn, args = frame["fn"], frame["args"]
        handler = handlers.get_rpc(fn)
        if handler is None:
            reply = izana_compat.execute_rpc(request, fn, args)
            if reply is None:
                raise RpcError("NOT_FOUND", f"function {fn!r} not found")
            return reply
        positional = args if isinstance(args, list) else []
        named = args if isinstance(args, dict) else {}
        try:
            inspect.signature(handler).bind(request, *positional, **named)
        except TypeError as exc:
            raise RpcError("BAD_REQUEST", f"bad arguments for {fn!r}: {exc}") from None
        return _settle(handler(request, *positional, **named))

    def _ctx(self, request: HubRequest, frame: dict) -> Any:
        name, params = frame["context"], frame["params"]
        handler = handlers.get_context_handler(name)
        if handler is None:
            reply = izana_compat.execute_ctx(request, name, params)
            if reply is None:
                raise RpcError("NOT_FOUND", f"context {name!r} not found")
            return reply
        return _settle(handler(request, params))
