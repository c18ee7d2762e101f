/**
 * SPEC 10.1 against the real hub and Redis: a version read before the data
 * (as Django's mizan_hub.versions does: HMGET v:C e n) and given as `since`
 * makes the first ack refetch nothing when nothing was published after it,
 * and invalidates (reason resume) when something that matches was.
 */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect } from '@mizan/hub-client';
import type { HubClient, InvalidationEvent, SocketConstructor } from '@mizan/hub-client';
import { bucket, canonicalKey } from '@mizan/hub-client/protocol';

import { HubServer, PREFIX, Publisher, Redis, RedisServer, stopAll, waitFor } from './realhub.js';

const NodeWebSocket = (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
const T = { timeout: 20_000 };

let redis: RedisServer;
let hub: HubServer;
let r: Redis;
let pub: Publisher;
const clients: HubClient[] = [];

before(async () => {
  redis = await new RedisServer().start();
  hub = await new HubServer(redis).start();
  r = await redis.client();
  pub = new Publisher(r);
});

after(async () => {
  for (const c of clients) c.close();
  r?.close();
  await stopAll();
});

/** What a context endpoint sends in X-Mizan-Version for `context`, read as Django reads it. */
async function djangoVersion(context: string): Promise<string> {
  const [e, n] = (await r.cmd('HMGET', `${PREFIX}v:${context}`, 'e', 'n')) as [string | null, string | null];
  return e === null ? '0:0' : `${e}:${n ?? 0}`;
}

/** A client with the default refetchOnAck; resolves once `context`'s first ack arrived and its callbacks ran. */
async function subscribed(context: string, params: { [k: string]: number }, since: string): Promise<InvalidationEvent[]> {
  assert.ok(NodeWebSocket, 'this Node has no global WebSocket (ci-test passes --experimental-websocket on Node 20)');
  const c = connect({ url: hub.url, WebSocket: NodeWebSocket, window: null, document: null });
  clients.push(c);
  let acked = false;
  c.onFrame((f) => void (f['subscribed'] === true && f['context'] === context && (acked = true)));
  const events: InvalidationEvent[] = [];
  c.subscribe(context, params, (e) => events.push(e), { spread: false, since });
  await waitFor(`the ack of ${context}`, () => acked);
  // A resume invalidation comes before the ack; the callbacks run in a microtask.
  await new Promise((resolve) => setImmediate(resolve));
  return events;
}

test('since from a response: nothing published after it, no refetch on the first ack', T, async () => {
  await pub.invalidate(['vnone']);
  const since = await djangoVersion('vnone');
  assert.match(since, /^[0-9a-z]+:1$/);
  assert.deepEqual(await subscribed('vnone', {}, since), []);
  // never published at all: 0:0 is exact too
  assert.deepEqual(await subscribed('vnever', {}, await djangoVersion('vnever')), []);
});

test('since from a response: a publish after the version read (before or after the data read) invalidates once', T, async () => {
  await pub.invalidate(['vpub']);
  const since = await djangoVersion('vpub');
  await pub.invalidate(['vpub']); // between the version read and the data read
  const events = await subscribed('vpub', {}, since);
  assert.deepEqual(
    events.map((e) => e.reason),
    ['resume'],
  );
  const after0 = await djangoVersion('vnew');
  await pub.invalidate(['vnew']);
  assert.deepEqual((await subscribed('vnew', {}, after0)).map((e) => e.reason), ['resume'], 'a hash created after a 0:0 read');
});

test('since from a response: one version for every scope; only the scopes a later publish matches are invalidated', T, async () => {
  await pub.invalidate([{ context: 'vscope', params: { id: 9 } }]);
  const since = await djangoVersion('vscope');
  await pub.invalidate([{ context: 'vscope', params: { id: 2 } }]);
  assert.deepEqual((await subscribed('vscope', { id: 2 }, since)).map((e) => e.reason), ['resume']);
  if (bucket(canonicalKey('vscope', { id: '1' })) !== bucket(canonicalKey('vscope', { id: '2' }))) {
    assert.deepEqual(await subscribed('vscope', { id: 1 }, since), []);
  }
});
