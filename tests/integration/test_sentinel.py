"""Issue 14, item 4: Redis behind Sentinel. The hub asks a Sentinel for the
master, follows a failover (+switch-master) to the promoted replica, is not
ready while it has no master, and heals the gap by versions: a client
subscribed through it is invalidated by an event published on the new
master. Two redis-servers (master, replica) and one Sentinel, all on free
loopback ports."""

from __future__ import annotations

import subprocess
import time

import pytest

from hubtest import (SLOW, RedisServer, connect, free_port, poll, publish_invalidate, run)


class Sentinel:
    def __init__(self, dir, master_port: int):
        self.dir = dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n" + self.extra_conf())
        self.proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                     stdout=open(self.dir / "log", "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        import redis
        self.client = self.make_client()
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("sentinel did not start")

    def extra_conf(self) -> str:
        """More sentinel.conf lines (a later one wins: test_redis_tls serves TLS)."""
        return ""

    def make_client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5)

    def master(self):
        return self.client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def cluster(tmp_path):
    master = RedisServer(tmp_path / "master")
    master.start()
    replica = RedisServer(tmp_path / "replica")
    replica.start()
    replica.client().execute_command("REPLICAOF", "127.0.0.1", str(master.port))
    deadline = time.monotonic() + 10 * SLOW
    while replica.client().info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)
    sentinel = Sentinel(tmp_path / "sentinel", master.port)
    # the Sentinel learns the replica from the master's INFO (every ~10 s at
    # first): wait until it lists it, or a failover has nobody to promote
    deadline = time.monotonic() + 20 * SLOW
    while not sentinel.client.execute_command("SENTINEL", "replicas", "mymaster"):
        assert time.monotonic() < deadline, "the Sentinel never saw the replica"
        time.sleep(0.2)
    yield master, replica, sentinel
    sentinel.stop()
    replica.kill()
    master.kill()


def test_the_hub_follows_a_sentinel_failover(make_hub, cluster):
    master, replica, sentinel = cluster
    hub = make_hub(master, allow_anonymous=True, redis_sentinels=f"127.0.0.1:{sentinel.port}",
                   redis_master_name="mymaster")
    assert "master of 'mymaster' is 127.0.0.1:%d" % master.port in hub.stderr_text()

    async def main():
        c = await connect(hub)
        await c.subscribe(context="todos")
        publish_invalidate(master.client(), ["todos"], {"todos": "e1:1"})
        assert (await c.recv())["invalidate"] == ["todos"]
        sentinel.client.execute_command("SENTINEL", "FAILOVER", "mymaster")
        await poll(lambda: int(sentinel.master()[1]) == replica.port, 15, what="the promotion")
        await poll(lambda: f"is 127.0.0.1:{replica.port} now (failover)" in hub.stderr_text(), 10,
                   what="the hub following +switch-master")
        await poll(lambda: hub.readyz()[0] == 200, 15, what="ready on the new master")
        # the link loss was a gap: the subscription is healed (or told nothing
        # changed), and live events come from the new master
        new = replica.client()
        new.hset("mizan:v:todos", mapping={"e": "e1", "n": "2", "u": "2"})
        publish_invalidate(new, ["todos"], {"todos": "e1:2"})
        frames = []
        while not any(f.get("invalidate") == ["todos"] and f.get("versions") == {"todos": "e1:2"}
                      for f in frames):
            frames.append(await c.recv(10))
        await c.close()
    run(main(), timeout=60)
    assert hub.metric("mizan_hub_redis_failovers_total") == 1


def test_no_master_means_not_ready(make_hub, redis_server, tmp_path):
    # a Sentinel that knows no master of that name
    sentinel = Sentinel(tmp_path / "s", redis_server.port)
    try:
        hub = make_hub(redis_server, allow_anonymous=True,
                       redis_sentinels=f"127.0.0.1:{sentinel.port}", redis_master_name="other",
                       wait_ready=False)
        time.sleep(1.0 * SLOW)
        status, body = hub.readyz()
        assert status == 503 and "no redis master known" in body, body
        assert "no master named 'other'" in hub.stderr_text()
    finally:
        sentinel.stop()
