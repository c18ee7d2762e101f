"""RFC 6455 on the hub's own sockets (server/src/core/mh_wsock): plain-TCP
WebSocket connections are read and written by the hub itself, not by
libwebsockets. Each case is what a client may send and what it must get."""
import os
import socket
import struct
import time

from hubtest import SLOW, RawWS


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bool = True,
          rsv: int = 0) -> bytes:
    n = len(payload)
    hdr = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        hdr += bytes([m | n])
    elif n < 65536:
        hdr += bytes([m | 126]) + struct.pack("!H", n)
    else:
        hdr += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_code(raw: RawWS) -> int | None:
    """Reads up to the hub's close frame; its code (None: EOF without one)."""
    while True:
        f = raw.recv_frame()
        if f is None:
            return None
        if f[0] == 8:
            return int.from_bytes(f[1][:2], "big") if len(f[1]) >= 2 else 1005


def eof_follows(raw: RawWS) -> bool:
    raw.sock.settimeout(5 * SLOW)
    try:
        return raw.sock.recv(1) == b""
    except ConnectionResetError:
        return True


def opened(hub) -> RawWS:
    raw = RawWS(hub.port)
    assert "welcome" in raw.recv_json()
    return raw


def test_a_ping_gets_its_payload_back_in_a_pong(hub):
    raw = opened(hub)
    raw.sock.sendall(frame(b"are you there", opcode=9))
    assert raw.recv_frame() == (10, b"are you there")
    raw.close()


def test_a_fragmented_message_with_a_ping_between_its_pieces(hub):
    raw = opened(hub)
    msg = b'{"action":"ping","ref":"frag"}'
    raw.sock.sendall(frame(msg[:5], fin=False) + frame(b"x", opcode=9) +
                     frame(msg[5:12], opcode=0, fin=False) + frame(msg[12:], opcode=0))
    assert raw.recv_frame() == (10, b"x")  # control frames may come between pieces
    assert raw.recv_json() == {"pong": True, "ref": "frag"}
    raw.close()


def test_frames_split_byte_by_byte_and_sent_with_the_head(hub):
    """A client may send frames before it read the 101, and TCP may cut
    anywhere: both arrive whole."""
    s = socket.create_connection(("127.0.0.1", hub.port))
    s.settimeout(5 * SLOW)
    head = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    one = frame(b'{"action":"ping","ref":1}')
    s.sendall(head.encode() + one)
    two = frame(b'{"action":"ping","ref":2}')
    for b in two:
        s.sendall(bytes([b]))
        time.sleep(0.002)
    raw = RawWS.__new__(RawWS)
    raw.sock, raw.buf = s, b""
    while b"\r\n\r\n" not in raw.buf:
        raw.buf += s.recv(4096)
    head_in, raw.buf = raw.buf.split(b"\r\n\r\n", 1)
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head_in
    assert "welcome" in raw.recv_json()
    assert raw.recv_json() == {"pong": True, "ref": 1}
    assert raw.recv_json() == {"pong": True, "ref": 2}
    raw.close()


def test_broken_frames_close_with_1002(hub):
    cases = {
        "unmasked": frame(b"{}", mask=False),
        "rsv1 without an extension": frame(b"{}", rsv=4),
        "reserved opcode 3": frame(b"{}", opcode=3),
        "fragmented ping": frame(b"", opcode=9, fin=False),
        "continuation with nothing to continue": frame(b"{}", opcode=0),
        "new message inside a fragmented one": frame(b"{", fin=False) + frame(b"}"),
        "close with a 1-byte payload": frame(b"\x03", opcode=8),
        "close code 1005 on the wire": frame(b"\x03\xed", opcode=8),
    }
    got = {}
    for name, data in cases.items():
        raw = opened(hub)
        raw.sock.sendall(data)
        got[name] = close_code(raw)
        assert eof_follows(raw), name
        raw.close()
    assert got == {name: 1002 for name in cases}


def test_a_frame_over_max_frame_is_refused_from_its_header(make_hub, redis_server):
    hub = make_hub(redis_server, max_frame=1024)
    raw = opened(hub)
    # only the header of a 1 MiB frame: refused before its payload
    raw.sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 1 << 20) + b"mask")
    assert close_code(raw) == 1009
    raw.close()
    raw = opened(hub)  # the same limit for a message in pieces
    raw.sock.sendall(frame(b"a" * 600, fin=False) + frame(b"b" * 600, opcode=0))
    assert close_code(raw) == 1009
    raw.close()
    assert hub.metric("mizan_hub_oversized_closes_total") == 2


def test_the_peers_close_is_echoed_and_the_socket_closed(hub):
    raw = opened(hub)
    raw.sock.sendall(frame(struct.pack("!H", 4321) + b"bye", opcode=8))
    f = raw.recv_frame()
    assert f is not None and f[0] == 8 and f[1][:2] == struct.pack("!H", 4321)
    assert eof_follows(raw)
    raw.close()
    raw = opened(hub)  # an empty close is echoed empty (1005 is never sent)
    raw.sock.sendall(frame(b"", opcode=8))
    assert raw.recv_frame() == (8, b"")
    raw.close()


def test_every_way_out_returns_the_gauges_to_zero(make_hub, redis_server):
    hub = make_hub(redis_server, ping_interval=1, pong_timeout=1)
    raws = [opened(hub) for _ in range(5)]
    assert hub.metric("mizan_hub_connections") == 5
    raws[0].sock.sendall(frame(struct.pack("!H", 1000), opcode=8))  # the close handshake
    assert raws[0].recv_frame() == (8, struct.pack("!H", 1000))
    raws[1].sock.close()  # FIN without a close frame
    raws[2].sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raws[2].sock.close()  # RST
    raws[3].sock.shutdown(socket.SHUT_WR)  # half-closed: EOF for the hub
    # raws[4] answers no ping: dropped after ping_interval + pong_timeout
    deadline = time.monotonic() + 10 * SLOW
    # the scrape's own socket is the one left
    while (hub.metric("mizan_hub_connections") or hub.metric("mizan_hub_sockets") != 1) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    m = hub.metrics()
    assert (m["mizan_hub_connections"], m["mizan_hub_sockets"]) == (0, 1)
    for raw in raws:
        raw.close()
