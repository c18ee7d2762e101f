/**
 * Presence (SPEC 11.2) through the built package's `connect()` against two
 * real hubs sharing one real redis-server: `channel.presence()`, `onJoin`
 * and `onLeave` across hubs, and the hub's refusal reaching the caller as
 * an `RpcError`. Tokens are minted here as the Django app mints them, with
 * the `info` claim a member carries.
 */

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { RpcError, connect } from '@mizan/hub-client';
import type { HubClient, PresenceMember, SocketConstructor } from '@mizan/hub-client';

import { HubServer, RedisServer, stopAll, tempDir, waitFor } from './realhub.js';

const NodeWebSocket = (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
const SECRET = '0123456789abcdef0123456789abcdef-presence-js';
const ROOM = { room: 'lobby' };

let redis: RedisServer;
let a: HubServer;
let b: HubServer;
const clients: HubClient[] = [];

function token(sub: string, info?: unknown): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT', kid: 'v1' });
  const body = b64({ sub, iat: now, exp: now + 300, ...(info === undefined ? {} : { info }) });
  return `${head}.${body}.${createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url')}`;
}

function client(hub: HubServer, sub?: string, info?: unknown): HubClient {
  assert.ok(NodeWebSocket, 'this Node has no global WebSocket');
  const c = connect({
    url: hub.url,
    WebSocket: NodeWebSocket,
    window: null,
    document: null,
    ...(sub ? { token: async () => token(sub, info) } : {}),
  });
  clients.push(c);
  return c;
}

/** The conn id of a client, from its welcome (the hub names it). */
const conn = (c: HubClient): Promise<string> => waitFor('welcome', () => c.welcome?.conn);

before(async () => {
  redis = await new RedisServer().start();
  const registry = join(tempDir('registry'), 'registry.json');
  writeFileSync(
    registry,
    JSON.stringify({
      version: 1,
      channels: { room: { params: ['room'], guard: 'public', presence: true }, chat: { guard: 'public' } },
    }),
  );
  const flags = ['--allow-anonymous', 'false', '--registry', registry, '--jwt-secret', SECRET, '--presence-heartbeat-ms', '250'];
  a = await new HubServer(redis, flags).start();
  b = await new HubServer(redis, flags).start();
});

after(async () => {
  for (const c of clients) c.close();
  await stopAll();
});

test('presence(), onJoin and onLeave across two hubs', { timeout: 20_000 }, async () => {
  const watcher = client(a, 'w');
  const room = watcher.channel('room', ROOM);
  const joined: PresenceMember[] = [];
  const left: PresenceMember[] = [];
  room.onJoin((m) => joined.push(m));
  room.onLeave((m) => left.push(m));
  const me = await conn(watcher);
  // only once the subscription is acked may it ask: retry until then
  const first = await waitFor('the first answer', () => room.presence().catch(() => undefined));
  assert.deepEqual(first, [{ conn: me, sub: 'w' }]);

  const ada = client(b, 'ada', { name: 'Ada' });
  const adaRoom = ada.channel('room', { room: 'lobby' });
  const adaConn = await conn(ada);
  await waitFor('ada joined', () => joined.length === 1);
  assert.deepEqual(joined, [{ conn: adaConn, sub: 'ada', info: { name: 'Ada' } }]);
  const members = await room.presence();
  assert.deepEqual(
    members.map((m) => m.conn).sort(),
    [me, adaConn].sort(),
  );
  // ada's hub reads the same list from Redis
  assert.deepEqual((await adaRoom.presence()).map((m) => m.conn).sort(), [me, adaConn].sort());

  // the hub's own Redis subscription cut: the list is pushed again, unasked
  const pushed: PresenceMember[][] = [];
  room.onMembers((list) => pushed.push(list));
  const killer = await redis.client();
  await killer.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
  killer.close();
  await waitFor('the pushed list', () => pushed.length >= 1, 10_000);
  assert.deepEqual(pushed[0]?.map((m) => m.conn).sort(), [me, adaConn].sort());

  adaRoom.close(); // the last handle unsubscribes: a leave
  await waitFor('ada left', () => left.length === 1);
  assert.deepEqual(left, [{ conn: adaConn, sub: 'ada', info: { name: 'Ada' } }]);
  assert.deepEqual(await room.presence(), [{ conn: me, sub: 'w' }]);
});

test('the hub refuses presence of a channel without it; a closed handle does not ask', { timeout: 20_000 }, async () => {
  const c = client(a, 'x');
  const chat = c.channel('chat', {});
  await conn(c);
  const err = await waitFor('a refusal', () =>
    chat.presence().then(
      () => undefined,
      (e: unknown) => (e instanceof RpcError && e.code === 'not_found' ? e : undefined),
    ),
  );
  assert.match(err.message, /keeps no presence/);
  // a closed handle does not ask
  const r = c.channel('room', { room: 'never' });
  r.close();
  await assert.rejects(r.presence(), /channel closed/);
});
