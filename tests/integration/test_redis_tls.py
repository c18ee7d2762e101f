"""TLS to Redis (`rediss://`, SPEC 11 "TLS"; issue 14 item 4): the hub owns
the socket (mh_rlink: OpenSSL on the libuv loop) and checks the server's
certificate chain against --redis-tls-ca and its name against the host it
connected to; --redis-tls-cert/--redis-tls-key answer a server that asks for
a client certificate. A CA, server and client certificates are made with the
`openssl` CLI in the test's temp dir; redis-server (Debian's is built with
TLS) serves TLS only (`--port 0 --tls-port N`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from hubtest import (RedisServer, connect, envelope_message, free_port, poll,
                     publish_invalidate, run, run_cli)
from hubtest import Sentinel


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "2", "-subj", f"/CN={name}", cwd=d)


def _leaf(d: Path, ca: str, name: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
             cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca: signs the server (IP 127.0.0.1 only) and the client; other-ca:
    trusted by nobody here but a hub told to trust it, signs a server cert."""
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "ca", "client", "extendedKeyUsage=clientAuth\n")
    _leaf(d, "other-ca", "stranger", "subjectAltName=IP:127.0.0.1\n"
          "extendedKeyUsage=serverAuth\n")
    return d


class TlsRedis(RedisServer):
    """redis-server serving TLS only, on self.port."""

    def __init__(self, dir: Path, pki: Path, cert: str = "server", auth_clients: bool = False,
                 host: str = "127.0.0.1"):
        super().__init__(dir)
        self.pki = pki
        self.cert = cert
        self.auth_clients = auth_clients
        self.host = host  # what the hub's URL names

    def extra_args(self) -> list[str]:
        p = self.pki
        return ["--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(p / f"{self.cert}.crt"),
                "--tls-key-file", str(p / f"{self.cert}.key"),
                "--tls-ca-cert-file", str(p / "ca.crt"),
                "--tls-auth-clients", "yes" if self.auth_clients else "no"]

    def client(self, **kw) -> redis.Redis:
        # the test's own client: no name check (the "stranger" cert is another CA's)
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5, socket_connect_timeout=2, ssl=True,
                           ssl_cert_reqs="none", ssl_certfile=str(self.pki / "client.crt"),
                           ssl_keyfile=str(self.pki / "client.key"), **kw)

    @property
    def url(self) -> str:
        return f"rediss://{self.host}:{self.port}/0"


@pytest.fixture
def tls_redis(tmp_path, pki):
    servers = []

    def make(**kw) -> TlsRedis:
        s = TlsRedis(tmp_path / f"redis-tls{len(servers)}", pki, **kw)
        servers.append(s)
        s.start()
        return s

    yield make
    for s in servers:
        s.kill()


async def _delivers(hub, r: redis.Redis) -> None:
    c = await connect(hub)
    assert (await c.subscribe(context="tls"))["version"] == "0:0"
    publish_invalidate(r, ["tls"], {"tls": "t1:1"})
    frame = await c.recv()
    assert frame["invalidate"] == ["tls"] and frame["versions"] == {"tls": "t1:1"}, frame
    await c.close()


async def _refused(hub, words: str) -> None:
    """The hub runs, is not ready, and its log says why (`words`)."""
    await poll(lambda: words in hub.stderr_text(), 10, what=f"'{words}' in the hub's log")
    status, body = hub.readyz()
    assert status == 503, (status, body)
    assert hub.metric("mizan_hub_redis_up") == 0
    assert "redis subscriber link connected" not in hub.stderr_text()


def test_tls_link_delivers_an_invalidation(make_hub, tls_redis, pki):
    """rediss:// with the CA: ready, and an invalidation published over TLS
    reaches a browser; the startup line says TLS."""
    server = tls_redis()
    hub = make_hub(server, redis_tls_ca=pki / "ca.crt")
    run(_delivers(hub, server.client()))
    assert "(TLS)" in hub.stderr_text()
    # The links really are TLS: a plain client on that port gets nothing sane.
    plain = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2,
                        socket_connect_timeout=2)
    with pytest.raises(redis.RedisError):
        plain.ping()


def test_tls_link_large_messages_and_restart(make_hub, tls_redis, pki):
    """Over TLS: a 300 kB channel message (many TLS records, several reads)
    arrives whole; Redis restarted on the same port: the links come back
    through a new handshake, the gap is healed, events flow again."""
    server = tls_redis()
    hub = make_hub(server, redis_tls_ca=pki / "ca.crt", redis_backoff_max_ms=200)
    r = server.client()
    big = "x" * 300_000

    async def main():
        c = await connect(hub)
        await c.subscribe(channel="big")
        await c.subscribe(context="tls")
        for seq in (1, 2):
            r.publish("mizan:events", envelope_message("big", {}, {"blob": big, "n": seq}, seq,
                                                       "e1"))
        for seq in (1, 2):
            frame = await c.recv()
            assert frame["data"] == {"blob": big, "n": seq}, str(frame)[:200]
        reconnects = hub.metric("mizan_hub_redis_reconnects_total")
        port = server.port
        server.kill()
        await poll(lambda: hub.readyz()[0] == 503, 5, what="/readyz 503 after Redis died")
        server.start(port=port)
        await poll(lambda: hub.readyz()[0] == 200, 15, what="/readyz 200 over TLS again")
        assert hub.metric("mizan_hub_redis_reconnects_total") >= reconnects + 2
        # the restarted server has no data: a gap heal for the channel, then events flow
        r2 = server.client()
        frames = await c.ping_barrier()
        assert all("invalidate" in f or "gap" in f for f in frames), frames
        publish_invalidate(r2, ["tls"], {"tls": "t2:1"})
        frame = await c.recv()
        assert frame["invalidate"] == ["tls"], frame
        await c.close()

    run(main())


class TlsSentinel(Sentinel):
    """A Sentinel serving TLS only, watching its master over TLS."""

    def __init__(self, dir: Path, master_port: int, pki: Path):
        self.pki = pki
        super().__init__(dir, master_port)

    def extra_conf(self) -> str:
        p = self.pki
        return (f"port 0\ntls-port {self.port}\ntls-replication yes\n"
                f"tls-cert-file {p / 'server.crt'}\ntls-key-file {p / 'server.key'}\n"
                f"tls-ca-cert-file {p / 'ca.crt'}\ntls-auth-clients no\n")

    def make_client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5, ssl=True, ssl_ca_certs=str(self.pki / "ca.crt"))


def test_sentinel_over_tls(make_hub, tls_redis, pki, tmp_path):
    """rediss:// with --redis-sentinels: the Sentinel is asked over TLS, the
    master it names is connected to over TLS, events flow."""
    master = tls_redis()
    sentinel = TlsSentinel(tmp_path / "sentinel", master.port, pki)
    try:
        hub = make_hub(master, redis_tls_ca=pki / "ca.crt",
                       redis_sentinels=f"127.0.0.1:{sentinel.port}", redis_master_name="mymaster")
        assert f"master of 'mymaster' is 127.0.0.1:{master.port}" in hub.stderr_text()
        run(_delivers(hub, master.client()))
    finally:
        sentinel.stop()


def test_server_cert_of_another_ca_is_refused(make_hub, tls_redis, pki):
    """The server's certificate chains to a CA the hub was not told to trust:
    no link, not ready, the verification failure in the log."""
    server = tls_redis(cert="stranger")
    hub = make_hub(server, wait_ready=False, redis_tls_ca=pki / "ca.crt")
    run(_refused(hub, "certificate verification failed: unable to get local issuer "
                      "certificate"))


def test_hostname_mismatch_is_refused(make_hub, tls_redis, pki):
    """The certificate names 127.0.0.1 only; the hub connects to 'localhost'
    (a name: resolved with uv_getaddrinfo, sent as SNI, checked against the
    certificate's names): the check fails, not ready."""
    server = tls_redis(host="localhost")
    hub = make_hub(server, wait_ready=False, redis_tls_ca=pki / "ca.crt")
    run(_refused(hub, "certificate verification failed: hostname mismatch"))


def test_client_certificate_required_and_accepted(make_hub, tls_redis, pki):
    """--tls-auth-clients yes: without a client certificate the server ends
    the handshake (not ready, the alert logged); with --redis-tls-cert/-key
    the hub is ready and delivers."""
    server = tls_redis(auth_clients=True)
    bare = make_hub(server, wait_ready=False, redis_tls_ca=pki / "ca.crt")

    async def refused():
        await poll(lambda: "certificate required" in bare.stderr_text(), 10,
                   what="the server's 'certificate required' alert in the log")
        assert bare.readyz()[0] == 503
        assert bare.metric("mizan_hub_redis_up") == 0

    run(refused())
    hub = make_hub(server, redis_tls_ca=pki / "ca.crt", redis_tls_cert=pki / "client.crt",
                   redis_tls_key=pki / "client.key")
    run(_delivers(hub, server.client()))


def test_plain_redis_over_ipv6(make_hub, tmp_path):
    """redis://[::1]:PORT: the bracketed IPv6 host parses and the link comes up."""

    class V6Redis(RedisServer):
        def extra_args(self):
            return ["--bind", "::1"]

        def client(self, **kw):
            return redis.Redis(host="::1", port=self.port, decode_responses=True,
                               socket_timeout=5, socket_connect_timeout=2, **kw)

        @property
        def url(self):
            return f"redis://[::1]:{self.port}/0"

    server = V6Redis(tmp_path / "redis6")
    server.start()
    try:
        hub = make_hub(server)
        run(_delivers(hub, server.client()))
    finally:
        server.kill()


def test_a_server_that_never_answers_the_handshake_times_out(make_hub, tmp_path):
    """A TCP listener that never accepts or speaks (the kernel completes the
    TCP handshake): the TLS handshake cannot finish. After
    --redis-connect-timeout-ms the attempt is given up with that reason and
    retried, rather than held for ever."""
    import socket

    class Mute:
        url = ""

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)
        mute = Mute()
        mute.url = f"rediss://127.0.0.1:{lsock.getsockname()[1]}/0"
        hub = make_hub(mute, wait_ready=False, redis_connect_timeout_ms=300,
                       redis_backoff_max_ms=100, log_level="debug")
        words = "redis command link: cannot connect to {}: no connection after 300 ms (the TLS " \
                "handshake)".format(mute.url[len("rediss://"):-len("/0")])

        async def main():
            await poll(lambda: hub.stderr_text().count(words) >= 2, 10,
                       what="the command link's handshake timed out twice")
            assert hub.readyz()[0] == 503

        run(main())
    finally:
        lsock.close()


@pytest.mark.parametrize("args, words", [
    (["--redis", "redis://127.0.0.1:6379/0", "--redis-tls-ca", "/nonexistent.pem"],
     "they need a rediss://"),
    (["--redis", "rediss://127.0.0.1:6379/0", "--redis-tls-cert", "/x.pem"],
     "give both or neither"),
    (["--redis", "redis://[::1:6379/0"], "missing ']'"),
    (["--redis", "rediss//127.0.0.1:6379/0"], "expected redis://"),
])
def test_bad_tls_settings_are_refused(args, words):
    out = run_cli("--allow-anonymous", "--listen", f"127.0.0.1:{free_port()}", *args)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert words in out.stderr, out.stderr


def test_unreadable_ca_file_stops_the_hub(tmp_path):
    """A CA file that cannot be loaded stops the hub at start with the reason
    (never a hub that quietly trusts nothing or everything)."""
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("not a certificate\n")
    out = run_cli("--allow-anonymous", "--listen", f"127.0.0.1:{free_port()}",
                  "--redis", "rediss://127.0.0.1:6379/0", "--redis-tls-ca", str(bad))
    assert out.returncode != 0
    assert "cannot load the CA file" in out.stderr and str(bad) in out.stderr, out.stderr
