#!/usr/bin/env python3
"""A deliberately awkward WebSocket server for checking mh-loadgen's client side.

Not a benchmark and not part of CI: run it, point mh-loadgen at it, compare
the counters with what each mode sends (see bench/README.md, "Tools").

    python3 bench/ws_edge_server.py MODE PORT

Modes:
  ok         welcome frame glued to the 101; after the first subscribe frame:
             an ack; a ping (the pong must echo it); a 3-fragment text message
             with a ping between fragments, written one byte per send(); a
             1 MiB text frame; a binary frame; an error frame; 5 frames with
             "ts"; then close 4008 (the close echo must carry 4008).
  toobig     as ok, but ends with a 1 MiB + 1 byte frame: mh-loadgen must close
             with 1009 and count a protocol drop.
  status     answers 403: counted as failure "status".
  badaccept  answers 101 with a wrong Sec-WebSocket-Accept: "bad_accept".

Each connection prints one line: "ok" when the client did what RFC 6455 asks,
else what went wrong.
"""
import base64
import hashlib
import socket
import struct
import sys
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(op, payload, fin=True):
    head = bytes([(0x80 if fin else 0) | op])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def read_frame(sock, buf):
    """Returns (opcode, unmasked payload, rest of buffer); opcode None on EOF."""
    while True:
        if len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, off = struct.unpack(">H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, off = struct.unpack(">Q", buf[2:10])[0], 10
            if n < 126 or off > 2:
                if not buf[1] & 0x80:
                    raise AssertionError("client frame not masked")
                if len(buf) >= off + 4 + n:
                    mask = buf[off:off + 4]
                    body = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[off + 4:off + 4 + n]))
                    return buf[0] & 0x0F, body, buf[off + 4 + n:]
        data = sock.recv(65536)
        if not data:
            return None, None, buf
        buf += data


def now_ms():
    return "%.3f" % (time.time() * 1000)


def expect(sock, buf, op, payload):
    got_op, got, buf = read_frame(sock, buf)
    if (got_op, got) != (op, payload):
        raise AssertionError("expected %r %r, got %r %r" % (op, payload, got_op, got))
    return buf


def session(sock, mode):
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("EOF during the request")
        req += chunk
    key = [line.split(b":", 1)[1].strip() for line in req.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if mode == "status":
        sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        return "ok"
    if mode == "badaccept":
        accept = b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                 + frame(1, b'{"welcome":{}}'))
    if mode == "badaccept":
        op, _, _ = read_frame(sock, b"")
        return "ok" if op is None else "client kept talking after a bad accept"

    buf = b""
    op, _, buf = read_frame(sock, buf)  # the subscribe frame
    if op != 1:
        return "no subscribe frame"
    sock.sendall(frame(1, b'{"subscribed":true,"context":"x"}'))
    sock.sendall(frame(9, b"hello"))
    buf = expect(sock, buf, 10, b"hello")

    body = ('{"invalidate":["bench"],"ts":%s,"pad":"%s"}' % (now_ms(), "y" * 300)).encode()
    parts = (frame(1, body[:100], fin=False) + frame(9, b"p2")
             + frame(0, body[100:200], fin=False) + frame(0, body[200:], fin=True))
    for i in range(len(parts)):
        sock.send(parts[i:i + 1])
    buf = expect(sock, buf, 10, b"p2")

    big = ('{"ts":%s,"data":"' % now_ms()).encode()
    big += b"z" * (1048576 - len(big) - 2) + b'"}'
    sock.sendall(frame(1, big) + frame(2, b"\x00\x01\x02"))
    sock.sendall(frame(1, b'{"error":{"code":"bad_json","message":"test"}}'))
    for _ in range(5):
        sock.sendall(frame(1, ('{"invalidate":["bench"],"ts":%s}' % now_ms()).encode()))
        time.sleep(0.2)
    if mode == "toobig":
        sock.sendall(frame(1, b"q" * 1048577))
        op, payload, buf = read_frame(sock, buf)
        return "ok" if (op, payload[:2]) == (8, struct.pack(">H", 1009)) else \
            "expected close 1009, got %r %r" % (op, payload)
    sock.sendall(frame(8, struct.pack(">H", 4008) + b"slow consumer"))
    buf = expect(sock, buf, 8, struct.pack(">H", 4008))
    return "ok"


def handle(sock, mode):
    try:
        print(session(sock, mode), flush=True)
    except (AssertionError, OSError) as e:
        print("FAIL:", e, flush=True)
    finally:
        sock.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, mode), daemon=True).start()


if __name__ == "__main__":
    main()
