/**
 * A minimal WebSocket server (RFC 6455: handshake, text/close/ping frames)
 * on 127.0.0.1, standing in for the hub in socket.test.ts so the runtime
 * runs over a real WebSocket implementation (Node's, from undici). Test
 * scaffolding only: no extensions, no fragmentation, one frame per message.
 */

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export type Frame = { [key: string]: unknown };

/** One accepted connection, from the hub's side. */
export class Conn {
  readonly frames: Frame[] = [];
  closedWith: { code: number; reason: string } | null = null;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  constructor(
    private readonly socket: Duplex,
    readonly headers: { [name: string]: string | string[] | undefined },
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    socket.on('error', () => {});
  }

  private parse(): void {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const opcode = (b[0] as number) & 0x0f;
      let len = (b[1] as number) & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + 4 + len) return; // client frames are always masked
      const mask = b.subarray(off, off + 4);
      const data = Buffer.from(b.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] = (data[i] as number) ^ (mask[i % 4] as number);
      this.buf = b.subarray(off + 4 + len);
      if (opcode === 1) this.frames.push(JSON.parse(data.toString('utf8')) as Frame);
      else if (opcode === 8) {
        const code = data.length >= 2 ? data.readUInt16BE(0) : 1005;
        this.closedWith = { code, reason: data.subarray(2).toString('utf8') };
        this.write(8, data.subarray(0, 2));
        this.socket.end();
      } else if (opcode === 9) this.write(10, data);
      for (const w of this.waiters.splice(0)) w();
    }
  }

  private write(opcode: number, payload: Buffer): void {
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]);
    this.socket.write(Buffer.concat([head, payload]));
  }

  send(frame: Frame): void {
    this.write(1, Buffer.from(JSON.stringify(frame), 'utf8'));
  }

  /** Closes from the hub's side with a code and reason. */
  close(code: number, reason = ''): void {
    const body = Buffer.alloc(2 + Buffer.byteLength(reason));
    body.writeUInt16BE(code, 0);
    body.write(reason, 2, 'utf8');
    this.write(8, body);
    this.socket.end();
  }

  /** Resolves when `count` frames (with `action`, if given) have arrived; rejects after 2 s. */
  async until(count: number, action?: string): Promise<Frame[]> {
    const matching = () => this.frames.filter((f) => action === undefined || f['action'] === action);
    const deadline = Date.now() + 2000;
    while (matching().length < count) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} ${action ?? ''} frame(s): ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
    return matching();
  }
}

export class MiniHub {
  readonly conns: Conn[] = [];
  private readonly sockets: Duplex[] = [];
  private readonly server: Server;
  private waiters: (() => void)[] = [];
  url = '';

  constructor() {
    this.server = createServer((_req, res) => res.writeHead(404).end());
    this.server.on('upgrade', (req, socket: Duplex) => {
      const key = req.headers['sec-websocket-key'];
      const accept = createHash('sha1').update(`${String(key)}${GUID}`).digest('base64');
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      this.sockets.push(socket);
      this.conns.push(new Conn(socket, req.headers));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/ws`;
  }

  /** Resolves with connection number `n` (1-based) once it is accepted; rejects after 2 s. */
  async conn(n: number): Promise<Conn> {
    const deadline = Date.now() + 2000;
    while (this.conns.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for connection ${n}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
    return this.conns[n - 1] as Conn;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy(); // upgraded sockets are no longer the server's
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
