"""Fan-out at scale and the slow consumer (SPEC 8, 9, 10; issue 4 items 7-8)."""

from __future__ import annotations

import asyncio
import json
import time

from hubtest import SLOW, RawWS, connect, envelope_message, now_ms, poll, publish_invalidate, run

N_CLIENTS = 1000


def test_thousand_clients_receive_one_event(hub, r):
    async def main():
        sem = asyncio.Semaphore(100)

        async def one():
            async with sem:
                c = await connect(hub, timeout=15)
                await c.subscribe(context="feed", timeout=15)
                return c

        t0 = time.monotonic()
        clients = await asyncio.gather(*(one() for _ in range(N_CLIENTS)))
        t_setup = time.monotonic() - t0
        assert len({c.conn for c in clients}) == N_CLIENTS
        await poll(lambda: hub.metric("mizan_hub_connections") == N_CLIENTS, 5,
                   what=f"{N_CLIENTS} connections in /metrics")

        published = time.monotonic()
        assert publish_invalidate(r, ["feed"], {"feed": "f1:1"}, ts=now_ms()) >= 1
        frames = await asyncio.gather(*(c.recv(timeout=10) for c in clients))
        t_all = time.monotonic() - published
        first = frames[0]
        assert first["invalidate"] == ["feed"] and first["versions"] == {"feed": "f1:1"}, first
        assert isinstance(first["spread_ms"], int) and 0 < first["spread_ms"] <= 2000, first
        assert all(f == first for f in frames), [f for f in frames if f != first][:3]
        # Exactly one: the next frame on every connection is the pong of a ping
        # sent after the invalidation arrived.
        extra = await asyncio.gather(*(c.ping_barrier(timeout=10) for c in clients))
        assert all(e == [] for e in extra), [e for e in extra if e][:3]
        await asyncio.gather(*(c.close() for c in clients))
        print(f"setup {t_setup:.2f} s, all {N_CLIENTS} received in {t_all * 1000:.0f} ms")

    run(main(), timeout=60)


def test_slow_consumer_is_closed_and_others_keep_up(make_hub, redis_server, r):
    """Small queue bounds; a raw-socket client subscribes and stops reading;
    6 MB of channel messages (more than any socket buffer here: tcp_wmem
    allows 4 MB) are published quickly but paced, so that readers in Python
    keep up with room to spare (a hub stall of ~100 ms still fits the bound).
    The good clients get every message, in order, with a small delay; the
    slow one is closed and counted."""
    hub = make_hub(redis_server, queue_max_msgs=256, queue_max_bytes=262144)
    n_events, pad, burst = 1000, "x" * 6000, 4

    async def main():
        # The slow one: handshake, subscribe, then it never reads again.
        slow = RawWS(hub.port, rcvbuf=4096)
        assert "welcome" in slow.recv_json()
        slow.send_text(json.dumps({"action": "subscribe", "channel": "feed", "ref": 1}))
        ack = slow.recv_json()
        assert ack.get("subscribed") is True, ack

        good = [await connect(hub) for _ in range(3)]
        for c in good:
            await c.subscribe(channel="feed")

        latencies = {c.conn: [] for c in good}

        async def reader(c):
            for seq in range(1, n_events + 1):
                f = await c.recv(timeout=10)
                assert f.get("seq") == seq and f["data"]["i"] == seq, (seq, f)
                latencies[c.conn].append(now_ms() - f["ts"])

        readers = [asyncio.create_task(reader(c)) for c in good]
        pipe = r.pipeline(transaction=False)
        for seq in range(1, n_events + 1):
            pipe.publish("mizan:events", envelope_message(
                "feed", {}, {"i": seq, "pad": pad}, seq, "e1", type_="Tick", ts=now_ms()))
            if seq % burst == 0:
                pipe.execute()
                await asyncio.sleep(0.01)
        pipe.execute()
        await asyncio.gather(*readers)
        worst = max(max(v) for v in latencies.values())
        p99 = sorted(x for v in latencies.values() for x in v)[int(0.99 * 3 * n_events)]
        print(f"good clients: p99 {p99:.1f} ms, max {worst:.1f} ms")
        assert worst < 1000 * SLOW, f"a good client waited {worst:.0f} ms (p99 {p99:.0f} ms)"

        await poll(lambda: hub.metric("mizan_hub_slow_consumer_closes_total") >= 1, 5,
                   what="mizan_hub_slow_consumer_closes_total >= 1")
        # Reading again: whatever was in flight, then the end of the connection;
        # a close frame, if one made it, carries 4008.
        codes = []
        n_frames = 0
        slow.sock.settimeout(5 * SLOW)
        while True:
            frame = await asyncio.to_thread(slow.recv_frame)
            if frame is None:
                break
            opcode, payload = frame
            if opcode == 8:
                codes.append(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None)
            else:
                n_frames += 1
        slow.close()
        assert n_frames < n_events, "the slow consumer got everything: it was never cut off"
        assert all(code == 4008 for code in codes), f"close codes {codes}, expected 4008"
        print(f"slow consumer: {n_frames} frames before the end, close codes {codes}")
        for c in good:
            assert await c.ping_barrier() == []
            await c.close()

    run(main(), timeout=90)
