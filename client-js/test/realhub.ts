/**
 * Helpers for hub.test.ts: a real redis-server and the real mizan-hub
 * (../build/bin/mizan-hub, or $MH_HUB_BIN) on free ports of 127.0.0.1, a tiny
 * RESP2 client over node:net (no npm dependency), and a publisher that plays
 * Django as SPEC section 11 says: one EVAL bumps the context version hash
 * (`HSETNX e`, `HINCRBY n`, `HSET u|<bucket> n`) and PUBLISHes the envelope
 * with the new versions, so counter order is delivery order.
 *
 * Every process started here is killed by `stopAll()` (the test file's
 * `after` hook) and, as a last resort, on process exit. Every wait has a
 * deadline. Nothing talks to an address outside 127.0.0.0/8.
 */

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { bucket, canonicalKey } from '@mizan/hub-client/protocol';
import type { EntryInput } from '@mizan/hub-client/protocol';

/** The repository root (this file runs from client-js/dist-test/). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HUB_BIN = process.env['MH_HUB_BIN'] || join(ROOT, 'build', 'bin', 'mizan-hub');
export const PREFIX = 'mizan:';

const children = new Set<ChildProcess>();
const dirs: string[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 10 ms until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, ms = 5000): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<Awaited<T>>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(name: string): string {
  const d = mkdtempSync(join(tmpdir(), `mizan-${name}-`));
  dirs.push(d);
  return d;
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

async function kill(p: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (exited(p)) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(signal);
  await Promise.race([gone, sleep(5000)]);
  if (!exited(p)) {
    p.kill('SIGKILL');
    await Promise.race([gone, sleep(5000)]);
  }
  children.delete(p);
}

/** Kills every process these helpers started and removes their directories. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => kill(c)));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

// ---------------------------------------------------------------- RESP

export type Resp = string | number | null | Resp[] | RespError;

export class RespError extends Error {}

/** A RESP2 client: one socket, pipelined commands answered in order. */
export class Redis {
  private buf: Buffer = Buffer.alloc(0);
  private pending: { ok: (v: Resp) => void; no: (e: Error) => void }[] = [];
  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      for (;;) {
        const r = parse(this.buf, 0);
        if (!r) break;
        this.buf = this.buf.subarray(r[1]);
        const p = this.pending.shift();
        if (p) p.ok(r[0]);
      }
    });
    const fail = (e: Error): void => {
      for (const p of this.pending.splice(0)) p.no(e);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('redis connection closed')));
  }

  static connect(port: number): Promise<Redis> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.off('error', reject);
        resolve(new Redis(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends one command; resolves its reply, rejects with a RespError on `-ERR`. */
  cmd(...args: (string | number)[]): Promise<Resp> {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const s = String(a);
      parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
    }
    return new Promise((ok, no) => {
      this.pending.push({ ok: (v) => (v instanceof RespError ? no(v) : ok(v)), no });
      this.sock.write(parts.join(''));
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Parses one reply at `i`: [value, next offset], or null when incomplete. */
function parse(b: Buffer, i: number): [Resp, number] | null {
  const eol = b.indexOf('\r\n', i);
  if (eol < 0) return null;
  const line = b.toString('utf8', i + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(b[i] as number)) {
    case '+':
      return [line, next];
    case '-':
      return [new RespError(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (b.length < next + n + 2) return null;
      return [b.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out: Resp[] = [];
      let j = next;
      for (let k = 0; k < n; k++) {
        const r = parse(b, j);
        if (!r) return null;
        out.push(r[0]);
        j = r[1];
      }
      return [out, j];
    }
    default:
      throw new Error(`bad RESP reply: ${JSON.stringify(b.toString('utf8', i, Math.min(b.length, i + 40)))}`);
  }
}

/** A stream entry from XRANGE/XREAD: id and fields. */
export interface StreamEntry {
  id: string;
  fields: { [name: string]: string };
}

export function entries(reply: Resp): StreamEntry[] {
  return ((reply as Resp[] | null) ?? []).map((e) => {
    const [id, kv] = e as [string, string[]];
    const fields: { [name: string]: string } = {};
    for (let i = 0; i < kv.length; i += 2) fields[kv[i] as string] = kv[i + 1] as string;
    return { id, fields };
  });
}

// ---------------------------------------------------------------- redis-server

export class RedisServer {
  port = 0;
  private proc: ChildProcess | undefined;
  readonly dir = tempDir('redis');

  async start(): Promise<this> {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      const log = openSync(join(this.dir, 'redis.log'), 'a');
      const p = spawn(
        'redis-server',
        ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
          '--dir', this.dir, '--unixsocket', '', '--daemonize', 'no', '--loglevel', 'warning'],
        { stdio: ['ignore', log, log] },
      );
      closeSync(log);
      children.add(p);
      this.proc = p;
      const deadline = Date.now() + 5000;
      while (!exited(p) && Date.now() < deadline) {
        try {
          const c = await Redis.connect(this.port);
          const pong = await c.cmd('PING');
          c.close();
          if (pong === 'PONG') return this;
        } catch {
          await sleep(20);
        }
      }
      await kill(p);
    }
    throw new Error(`redis-server did not start: ${readFileSync(join(this.dir, 'redis.log'), 'utf8').slice(-1000)}`);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  client(): Promise<Redis> {
    return Redis.connect(this.port);
  }

  stop(): Promise<void> {
    return this.proc ? kill(this.proc) : Promise.resolve();
  }
}

// ---------------------------------------------------------------- the hub

/** The real hub. `flags` are extra command-line settings (`--rpc-timeout-ms`, '300'). */
export class HubServer {
  port = 0;
  private proc: ChildProcess | undefined;
  readonly dir = tempDir('hub');
  readonly log = join(this.dir, 'hub.stderr');

  constructor(
    private readonly redis: RedisServer,
    private readonly flags: string[] = [],
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  argv(): string[] {
    return [
      '--listen', `127.0.0.1:${this.port}`,
      '--redis', this.redis.url,
      '--allow-anonymous',
      '--canary-interval-ms', '100',
      '--canary-window', '2',
      '--drain-window', '0',
      '--redis-backoff-max-ms', '200',
      '--log-level', 'info',
      ...this.flags,
    ];
  }

  /** Starts on a free port, or on `port` (a restart: the same URL for the clients). */
  async start(port?: number): Promise<this> {
    if (!existsSync(HUB_BIN)) throw new Error(`no hub binary at ${HUB_BIN}: build it (cmake -S . -B build && cmake --build build)`);
    let last = '';
    for (let attempt = 0; attempt < (port ? 1 : 3); attempt++) {
      this.port = port ?? (await freePort());
      const log = openSync(this.log, 'a');
      const env: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIZAN_HUB_')) env[k] = v;
      const p = spawn(HUB_BIN, this.argv(), { stdio: ['ignore', log, log], env });
      closeSync(log);
      children.add(p);
      this.proc = p;
      const deadline = Date.now() + 8000;
      while (!exited(p) && Date.now() < deadline) {
        if ((await httpStatus(this.port, '/readyz')) === 200) return this;
        await sleep(25);
      }
      last = this.stderr().slice(-1500);
      await kill(p);
    }
    throw new Error(`the hub did not become ready on 127.0.0.1:${this.port}:\n${last}`);
  }

  /** SIGKILL: no drain, no close frames; the clients see the TCP connection die. */
  kill(): Promise<void> {
    return this.proc ? kill(this.proc, 'SIGKILL') : Promise.resolve();
  }

  stderr(): string {
    try {
      return readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }
}

function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

// ---------------------------------------------------------------- playing Django

/**
 * SPEC section 11's publish step for an invalidation, in one EVAL:
 * KEYS[i] = v:{context i}; ARGV = events channel, epoch (used when the hash is
 * new), the envelope without its closing brace, then per context its name as
 * a JSON string literal, the number k of version fields to set and those k
 * field names ("u" for unscoped/{}-scoped entries, else the entry's bucket).
 */
const PUBLISH_INVALIDATE = `
local a = 4
local vs = {}
for i = 1, #KEYS do
  local name = ARGV[a]
  local k = tonumber(ARGV[a + 1])
  a = a + 2
  redis.call('HSETNX', KEYS[i], 'e', ARGV[2])
  local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
  for j = 0, k - 1 do redis.call('HSET', KEYS[i], ARGV[a + j], n) end
  a = a + k
  vs[#vs + 1] = name .. ':"' .. redis.call('HGET', KEYS[i], 'e') .. ':' .. string.format('%d', n) .. '"'
end
local envelope = ARGV[3] .. ',"versions":{' .. table.concat(vs, ',') .. '}}'
redis.call('PUBLISH', ARGV[1], envelope)
return envelope`;

/**
 * A channel message: KEYS[1] = c:{canonical key}; ARGV = events channel,
 * epoch (for a new hash), the envelope's members before seq/epoch.
 */
const PUBLISH_MESSAGE = `
redis.call('HSETNX', KEYS[1], 'e', ARGV[2])
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
local e = redis.call('HGET', KEYS[1], 'e')
local envelope = '{' .. ARGV[3] .. ',"seq":' .. string.format('%d', s) .. ',"epoch":"' .. e .. '"}'
redis.call('PUBLISH', ARGV[1], envelope)
return envelope`;

/** A fresh epoch, `[0-9a-z]`, as a publisher would make from Redis TIME. */
export function newEpoch(): string {
  return Date.now().toString(36) + Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, '0');
}

/** Plays Django's publisher (SPEC sections 10 and 11). */
export class Publisher {
  constructor(
    readonly redis: Redis,
    readonly epoch = newEpoch(),
  ) {}

  /** Publishes one invalidate envelope; returns its text (with the versions Redis assigned). */
  async invalidate(list: EntryInput[]): Promise<string> {
    const byContext = new Map<string, Set<string>>();
    for (const e of list) {
      const ctx = typeof e === 'string' ? e : e.context;
      const params = typeof e === 'string' ? {} : (e.params ?? {});
      const field = Object.keys(params).length === 0 ? 'u' : String(bucket(canonicalKey(ctx, params)));
      const fields = byContext.get(ctx) ?? new Set<string>();
      byContext.set(ctx, fields.add(field));
    }
    const head = `{"v":1,"kind":"invalidate","ts":${Date.now()},"invalidate":${JSON.stringify(list)}`;
    const keys = [...byContext.keys()].map((c) => `${PREFIX}v:${c}`);
    const argv: string[] = [];
    for (const [ctx, fields] of byContext) argv.push(JSON.stringify(ctx), String(fields.size), ...fields);
    return (await this.redis.cmd('EVAL', PUBLISH_INVALIDATE, keys.length, ...keys, `${PREFIX}events`, this.epoch, head, ...argv)) as string;
  }

  /** Publishes one channel message envelope; returns its text. */
  async message(channel: string, params: { [name: string]: string }, type: string, data: unknown): Promise<string> {
    const members = `"v":1,"kind":"message","ts":${Date.now()},"channel":${JSON.stringify(channel)},"params":${JSON.stringify(params)},"type":${JSON.stringify(type)},"data":${JSON.stringify(data)}`;
    const key = `${PREFIX}c:${canonicalKey(channel, params)}`;
    return (await this.redis.cmd('EVAL', PUBLISH_MESSAGE, 1, key, `${PREFIX}events`, this.epoch, members)) as string;
  }

  /** The version hash of a context, as a field → value object. */
  async versionHash(context: string): Promise<{ [field: string]: string }> {
    const flat = (await this.redis.cmd('HGETALL', `${PREFIX}v:${context}`)) as string[];
    const out: { [field: string]: string } = {};
    for (let i = 0; i < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
    return out;
  }
}
