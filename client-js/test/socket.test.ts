/**
 * The runtime over a real WebSocket implementation (Node's global
 * `WebSocket`, from undici; ci-test passes --experimental-websocket where
 * Node 20 needs it) against a minimal loopback server playing the hub
 * (wsserver.ts), with real timers: the event shapes, close codes and
 * reasons a real stack delivers. Not the real hub: that test is still to
 * come (README, "Not yet").
 */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect } from '@mizan/hub-client';
import type { HubClient, InvalidationEvent, SocketConstructor, State } from '@mizan/hub-client';

import { MiniHub } from './wsserver.js';
import type { Conn } from './wsserver.js';

const RealWebSocket = (globalThis as { WebSocket?: SocketConstructor }).WebSocket;

const WELCOME = {
  welcome: { protocol: 1, hub: 'loop', conn: 'loop.1', identity: null, expires: null, spread_ms: 0, max_frame: 65536 },
};

let hub: MiniHub;
before(async () => {
  hub = new MiniHub();
  await hub.start();
});
after(() => hub.stop());

function client(extra: object = {}): HubClient {
  assert.ok(RealWebSocket, 'this Node has no global WebSocket (Node 20 needs --experimental-websocket; ci-test passes it)');
  return connect({ url: hub.url, WebSocket: RealWebSocket, baseDelay: 20, maxDelay: 50, window: null, document: null, ...extra });
}

function waitFor(c: HubClient, state: State): Promise<void> {
  if (c.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`still ${c.state}, not ${state}`)), 2000);
    const off = c.onState((s) => {
      if (s !== state) return;
      clearTimeout(t);
      off();
      resolve();
    });
  });
}

async function next(n: number, c: HubClient): Promise<Conn> {
  const conn = await hub.conn(n);
  conn.send(WELCOME);
  await waitFor(c, 'open');
  return conn;
}

test('real socket: welcome, subscribe, invalidation, a hub close code with its reason, resume with since', async () => {
  const first = hub.conns.length;
  const c = client();
  const events: InvalidationEvent[] = [];
  c.subscribe('user', { user_id: 5 }, (e) => events.push(e));
  let conn = await next(first + 1, c);
  assert.deepEqual(await conn.until(1, 'subscribe'), [{ action: 'subscribe', context: 'user', params: { user_id: '5' } }]);
  conn.send({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'k2f9a:42' });
  conn.send({ invalidate: [{ context: 'user', params: { user_id: '5' } }], versions: { user: 'k2f9a:43' } });
  const deadline = Date.now() + 2000;
  while (events.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(events.length, 1);

  const states: [State, number | null][] = [];
  c.onState((s, r) => states.push([s, r ? r.code : null]));
  conn.close(4029, 'rate limited');
  await waitFor(c, 'reconnecting');
  assert.deepEqual(c.reason, { code: 4029, reason: 'rate limited' });
  conn = await next(first + 2, c);
  assert.deepEqual(await conn.until(1, 'subscribe'), [
    { action: 'subscribe', context: 'user', params: { user_id: '5' }, since: 'k2f9a:43' },
  ]);
  assert.deepEqual(states, [
    ['reconnecting', 4029],
    ['open', null],
  ]);
  c.close();
  await conn.until(0);
  const closeDeadline = Date.now() + 2000;
  while (!conn.closedWith && Date.now() < closeDeadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(conn.closedWith, { code: 1000, reason: 'client closed' });
});

test('real socket: rpc round trip, then close 4001 from the hub stops retrying', async () => {
  const first = hub.conns.length;
  const c = client();
  const conn = await next(first + 1, c);
  const reply = c.rpc('todos.add', { title: 'milk' });
  const [frame] = await conn.until(1, 'rpc');
  conn.send({ id: frame?.['id'], ok: true, data: { result: 7 } });
  assert.deepEqual(await reply, { result: 7 });

  conn.close(4001, 'unauthorized');
  await waitFor(c, 'closed');
  assert.deepEqual(c.reason, { code: 4001, reason: 'unauthorized' });
  await new Promise((r) => setTimeout(r, 200)); // several backoff periods
  assert.equal(hub.conns.length, first + 1, 'no new connection after 4001');
});

test('real socket: token auth frame first; an auth error closes the socket with 4001', async () => {
  const first = hub.conns.length;
  const c = client({ token: async () => 'eyJ.e30.sig' });
  const conn = await hub.conn(first + 1);
  assert.deepEqual(await conn.until(1), [{ action: 'auth', token: 'eyJ.e30.sig', ref: 'auth' }]);
  conn.send(WELCOME);
  conn.send({ error: { code: 'bad_token', message: 'bad signature' }, ref: 'auth' });
  await waitFor(c, 'closed');
  const deadline = Date.now() + 2000;
  while (!conn.closedWith && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(conn.closedWith, { code: 4001, reason: 'bad signature' });
});
