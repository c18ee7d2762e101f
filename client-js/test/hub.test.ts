/**
 * The built package's `connect()` against the real hub
 * (../build/bin/mizan-hub --allow-anonymous) and a real redis-server, both
 * started by this file on free ports of 127.0.0.1, over Node's own WebSocket
 * client (undici; ci-test passes --experimental-websocket on Node 20). The
 * test plays Django with a RESP client (realhub.ts): it publishes envelopes
 * and bumps version hashes as SPEC section 11 says, reads `mizan:in`, and
 * answers rpc on `mizan:hub:<hub id>` as a worker would.
 *
 * Token auth and refresh run against a second hub started with
 * --jwt-secret (the last test), with MWT-shaped HS256 tokens minted here.
 */

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test as nodeTest } from 'node:test';

import { RpcError, connect } from '@mizan/hub-client';
import type { ConnectOptions, EventSourceConstructor, FetchLike, HubClient, InvalidationEvent, SocketConstructor, State } from '@mizan/hub-client';

import { NodeEventSource } from './eventsource.js';
import { HubServer, PREFIX, Publisher, Redis, RedisServer, entries, sleep, stopAll, waitFor } from './realhub.js';

const NodeWebSocket = (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
const T = { timeout: 20_000 };

/**
 * Every case runs twice: over a WebSocket, and with the transport forced to
 * Server-Sent Events (SPEC 6.1: the stream, and POSTs for what the client sends).
 */
type Mode = 'websocket' | 'sse';
let mode: Mode = 'websocket';
function test(name: string, opts: { timeout: number }, fn: () => Promise<void>): void {
  for (const m of ['websocket', 'sse'] as const)
    nodeTest(m === 'sse' ? `[sse] ${name}` : name, opts, async () => {
      mode = m;
      await fn();
    });
}

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

/** A client of the real hub that records the frames it sends and receives. */
interface Probe {
  hub: HubClient;
  sent: { [k: string]: unknown }[];
  got: { [k: string]: unknown }[];
  states: State[];
}

function probe(url: string, extra: Partial<ConnectOptions> = {}): Probe {
  assert.ok(NodeWebSocket, 'this Node has no global WebSocket (Node 20 needs --experimental-websocket; ci-test passes it)');
  const sent: { [k: string]: unknown }[] = [];
  const Base = NodeWebSocket as unknown as new (url: string, protocols?: string | string[]) => { send(d: string): void };
  const Recording = class extends Base {
    override send(d: string): void {
      sent.push(JSON.parse(d) as { [k: string]: unknown });
      super.send(d);
    }
  } as unknown as SocketConstructor;
  // Over SSE what the client sends is POSTed: one frame per line of a body.
  const recordingFetch: FetchLike = (u, init) => {
    for (const line of init.body.split('\n')) sent.push(JSON.parse(line) as { [k: string]: unknown });
    return fetch(u, init);
  };
  const via: Partial<ConnectOptions> =
    mode === 'sse'
      ? { transport: 'sse', EventSource: NodeEventSource as unknown as EventSourceConstructor, fetch: recordingFetch }
      : { WebSocket: Recording };
  // refetchOnAck is off unless a test is about it: the others count callbacks.
  const c = connect({ url, ...via, baseDelay: 50, maxDelay: 250, window: null, document: null, refetchOnAck: false, ...extra });
  assert.equal(c.transport, mode);
  clients.push(c);
  const p: Probe = { hub: c, sent, got: [], states: [c.state] };
  c.onFrame((f) => void p.got.push(f));
  c.onState((s) => void p.states.push(s));
  return p;
}

const opened = (p: Probe): Promise<boolean> => waitFor(`state open (now ${p.hub.state})`, () => p.hub.state === 'open', 5000);

/** The n-th (1-based) `subscribed` ack for `context`. */
function acked(p: Probe, context: string, n = 1): Promise<{ [k: string]: unknown }> {
  return waitFor(`ack #${n} of ${context}`, () => p.got.filter((f) => f['subscribed'] === true && f['context'] === context)[n - 1]);
}

test('subscribe → invalidate frame → callback; a non-matching entry is not delivered; unsubscribe stops delivery', T, async () => {
  const p = probe(hub.url);
  const events: InvalidationEvent[] = [];
  const barrier: InvalidationEvent[] = [];
  const off = p.hub.subscribe('todos', { list: 'a' }, (e) => events.push(e), { spread: false });
  p.hub.subscribe('barrier1', {}, (e) => barrier.push(e), { spread: false });
  await opened(p);
  const ack = await acked(p, 'todos');
  assert.deepEqual(ack['params'], { list: 'a' });
  assert.match(String(ack['version']), /^(0|[0-9a-z]+):\d+$/);
  await acked(p, 'barrier1');

  const envelope = await pub.invalidate([{ context: 'todos', params: { list: 'a' } }]);
  const version = (JSON.parse(envelope) as { versions: { todos: string } }).versions.todos;
  await waitFor('the first invalidation', () => events.length === 1);
  assert.deepEqual(events[0]?.entries, [{ context: 'todos', params: { list: 'a' } }]);
  assert.equal(events[0]?.reason, undefined);
  assert.equal(p.hub.version('todos'), version, 'the frame carried the version the publisher made');
  const frame = p.got.find((f) => f['invalidate'] !== undefined);
  assert.deepEqual(frame?.['versions'], { todos: version });

  // Another list of the same context does not match {list: a} (SPEC 4); the
  // hub delivers in publish order, so once the barrier event arrived, a
  // todos event published before it would have too.
  await pub.invalidate([{ context: 'todos', params: { list: 'b' } }]);
  await pub.invalidate(['barrier1']);
  await waitFor('barrier event 1', () => barrier.length === 1);
  assert.equal(events.length, 1, 'list b was not delivered to a subscription of list a');

  off();
  const unsubscribed = await waitFor('the unsubscribed answer', () =>
    p.got.find((f) => f['unsubscribed'] === true && f['context'] === 'todos'),
  );
  assert.deepEqual(unsubscribed['params'], { list: 'a' });
  assert.deepEqual(
    p.sent.filter((f) => f['action'] === 'unsubscribe'),
    [{ action: 'unsubscribe', context: 'todos', params: { list: 'a' } }],
  );
  await pub.invalidate(['todos']);
  await pub.invalidate(['barrier1']);
  await waitFor('barrier event 2', () => barrier.length === 2);
  assert.equal(events.length, 1, 'no delivery after unsubscribe');
  assert.equal(p.got.filter((f) => Array.isArray(f['invalidate']) && JSON.stringify(f['invalidate']).includes('todos')).length, 1,
    'the hub sent no further todos frame after unsubscribed');
  p.hub.close();
});

test('reconnect: the hub is SIGKILLed and restarted on the same port; the client reconnects and resubscribes by itself', T, async () => {
  const p = probe(hub.url);
  const events: InvalidationEvent[] = [];
  p.hub.subscribe('room', { id: 7 }, (e) => events.push(e), { spread: false });
  await opened(p);
  await acked(p, 'room');
  const firstHub = p.hub.welcome?.hub;

  await hub.kill();
  await waitFor('state reconnecting', () => p.hub.state === 'reconnecting');
  assert.equal(p.hub.reason?.code, 1006, `abnormal closure, got ${JSON.stringify(p.hub.reason)}`);
  await sleep(300); // a few failed attempts against the closed port
  const t0 = Date.now();
  await hub.start(hub.port);
  await opened(p);
  const reconnectMs = Date.now() - t0;
  await acked(p, 'room', 2);
  assert.notEqual(p.hub.welcome?.hub, firstHub, 'a new hub process (new random hub id) welcomed the client');
  const subscribes = p.sent.filter((f) => f['action'] === 'subscribe' && f['context'] === 'room');
  assert.equal(subscribes.length, 2, 'subscribed once per connection');
  assert.deepEqual(p.states.slice(-2), ['reconnecting', 'open']);

  await pub.invalidate([{ context: 'room', params: { id: '7' } }]);
  await waitFor('an invalidation on the new connection', () => events.length === 1);
  assert.equal(events[0]?.reason, undefined);
  assert.ok(reconnectMs < 3000, `reconnected ${reconnectMs} ms after the restart`);
  p.hub.close();
});

test('gap healing: events published while the hub was down fire the callback after the reconnect (reason resume); untouched contexts do not', T, async () => {
  await pub.invalidate(['user', 'quiet']); // both contexts have history (versions are not 0:0)
  const p = probe(hub.url);
  const events: InvalidationEvent[] = [];
  const quiet: InvalidationEvent[] = [];
  p.hub.subscribe('user', { user_id: 5 }, (e) => events.push(e), { spread: false });
  p.hub.subscribe('quiet', {}, (e) => quiet.push(e), { spread: false });
  await opened(p);
  const ack = await acked(p, 'user');
  await acked(p, 'quiet');
  const before = String(ack['version']);
  assert.notEqual(before, '0:0');

  await hub.kill();
  await waitFor('state reconnecting', () => p.hub.state === 'reconnecting');
  // Django keeps publishing while the hub is down: the version hash moves,
  // the PUBLISH reaches nobody.
  await pub.invalidate([{ context: 'user', params: { user_id: 5 } }]);
  const hash = await pub.versionHash('user');
  const after = `${hash['e']}:${hash['n']}`;
  assert.notEqual(after, before);
  assert.equal(events.length, 0, 'nothing arrived while the hub was down');

  await hub.start(hub.port);
  await opened(p);
  await acked(p, 'user', 2);
  await acked(p, 'quiet', 2);
  const resub = p.sent.filter((f) => f['action'] === 'subscribe' && f['context'] === 'user');
  assert.equal(resub.length, 2);
  assert.equal(resub[1]?.['since'], before, 'resubscribed with since = its resume point');
  await waitFor('the resume invalidation', () => events.length === 1);
  assert.equal(events[0]?.reason, 'resume');
  assert.deepEqual(events[0]?.entries, [{ context: 'user', params: { user_id: '5' } }]);
  const healing = p.got.find((f) => f['reason'] === 'resume');
  assert.deepEqual(healing?.['versions'], { user: after });
  // The hub answers the resume before the ack; by the second quiet ack
  // every resume frame has arrived.
  assert.equal(quiet.length, 0, 'a context with no event during the outage was not invalidated');
  p.hub.close();
});

test('hub link gap: the hub loses its Redis subscription while an event is published; the client gets reason gap (a stream: resume)', T, async () => {
  const p = probe(hub.url);
  const events: InvalidationEvent[] = [];
  p.hub.subscribe('feed', { tab: 'x' }, (e) => events.push(e), { spread: false });
  await opened(p);
  await acked(p, 'feed');
  // One transaction: the hub's pub/sub link is cut, then the event is
  // published, so the hub surely misses it (SPEC 10, hub link gaps).
  await r.cmd('MULTI');
  await r.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
  assert.equal(await pub.invalidate([{ context: 'feed', params: { tab: 'x' } }]), 'QUEUED');
  const exec = (await r.cmd('EXEC')) as unknown[];
  assert.ok((exec[0] as number) >= 1, 'the hub had a subscriber link to cut');
  await waitFor('the healing invalidation', () => events.length >= 1, 8000);
  if (mode === 'sse') {
    // SPEC 6.1: a hub process that loses its Redis link ends its streams
    // (1013), so a stream's client heals by resuming on a new one.
    assert.equal(events[0]?.reason, 'resume');
    await waitFor('the stream again', () => p.hub.state === 'open', 8000);
  } else {
    assert.equal(events[0]?.reason, 'gap');
    assert.equal(p.hub.state, 'open', 'the browser connection stayed up');
  }
  p.hub.close();
});

test('channel send: a message frame becomes a mizan:in entry with the normalized body', T, async () => {
  const p = probe(hub.url);
  await opened(p);
  const last = entries(await r.cmd('XREVRANGE', `${PREFIX}in`, '+', '-', 'COUNT', 1))[0]?.id ?? '0-0';
  const chat = p.hub.channel('chat', { room: 'lobby' });
  chat.send({ text: 'hi', n: 1 });
  const [entry] = await waitFor('the entry on mizan:in', async () => {
    const list = entries(await r.cmd('XRANGE', `${PREFIX}in`, `(${last}`, '+'));
    return list.length ? list : null;
  });
  assert.ok(entry);
  const f = entry.fields;
  assert.equal(f['v'], '1');
  assert.equal(f['kind'], 'message');
  assert.equal(f['hub'], p.hub.welcome?.hub);
  assert.equal(f['conn'], p.hub.welcome?.conn);
  assert.equal(f['identity'], 'null');
  assert.match(String(f['ts']), /^\d+(\.\d+)?$/);
  const body = JSON.parse(String(f['body'])) as { [k: string]: unknown };
  assert.equal(body['action'], 'message');
  assert.equal(body['channel'], 'chat');
  assert.deepEqual(body['params'], { room: 'lobby' });
  assert.deepEqual(body['data'], { text: 'hi', n: 1 });
  chat.close();
  p.hub.close();
});

test('channel receive: a published message envelope reaches on() with seq and epoch; unsubscribing is acknowledged', T, async () => {
  const p = probe(hub.url);
  const chat = p.hub.channel('chat', { room: 'news' });
  const got: { type: string; data: unknown; seq?: number; epoch?: string; ts?: number }[] = [];
  chat.on((m) => got.push(m));
  await opened(p);
  const ack = await waitFor('the channel ack', () => p.got.find((f) => f['subscribed'] === true && f['channel'] === 'chat'));
  assert.deepEqual(ack['params'], { room: 'news' });

  const envelope = JSON.parse(await pub.message('chat', { room: 'news' }, 'ChatMessage', { text: 'hello' })) as { seq: number; epoch: string; ts: number };
  await pub.message('chat', { room: 'other' }, 'ChatMessage', { text: 'not for us' });
  const second = JSON.parse(await pub.message('chat', { room: 'news' }, 'ChatMessage', { text: 'again' })) as { seq: number };
  await waitFor('two messages', () => got.length === 2);
  assert.deepEqual(got[0], { type: 'ChatMessage', data: { text: 'hello' }, seq: envelope.seq, epoch: envelope.epoch, ts: envelope.ts });
  assert.equal(got[1]?.seq, second.seq);
  assert.equal(second.seq, envelope.seq + 1);
  chat.close();
  await waitFor('the channel unsubscribed answer', () => p.got.find((f) => f['unsubscribed'] === true && f['channel'] === 'chat'));
  p.hub.close();
});

/** Plays a Django worker: the next rpc entry on mizan:in after `last` (blocking read). */
async function nextInbound(worker: Redis, last: string): Promise<{ hub: string; conn: string; body: { [k: string]: unknown } }> {
  const reply = (await worker.cmd('XREAD', 'COUNT', 1, 'BLOCK', 5000, 'STREAMS', `${PREFIX}in`, last)) as [string, unknown][] | null;
  assert.ok(reply, 'no entry on mizan:in within 5 s');
  const [entry] = entries(reply[0]?.[1] as never);
  assert.ok(entry);
  return { hub: String(entry.fields['hub']), conn: String(entry.fields['conn']), body: JSON.parse(String(entry.fields['body'])) as { [k: string]: unknown } };
}

async function lastInbound(): Promise<string> {
  return entries(await r.cmd('XREVRANGE', `${PREFIX}in`, '+', '-', 'COUNT', 1))[0]?.id ?? '0-0';
}

test('rpc: the worker reads mizan:in and replies on mizan:hub:<hub id>; the promise resolves with data', T, async () => {
  const p = probe(hub.url);
  await opened(p);
  const worker = await redis.client();
  try {
    const last = await lastInbound();
    const call = p.hub.rpc('todos.add', { title: 'milk' });
    const inbound = await nextInbound(worker, last);
    assert.equal(inbound.hub, p.hub.welcome?.hub);
    assert.equal(inbound.conn, p.hub.welcome?.conn);
    assert.equal(inbound.body['action'], 'rpc');
    assert.equal(inbound.body['fn'], 'todos.add');
    assert.deepEqual(inbound.body['args'], { title: 'milk' });
    const reply = { v: 1, kind: 'reply', conn: inbound.conn, frame: { id: inbound.body['id'], ok: true, data: { result: { id: 1, title: 'milk' }, invalidate: ['todos'] } } };
    const receivers = await r.cmd('PUBLISH', `${PREFIX}hub:${inbound.hub}`, JSON.stringify(reply));
    assert.equal(receivers, 1, 'the hub listens on its own channel');
    assert.deepEqual(await call, { result: { id: 1, title: 'milk' }, invalidate: ['todos'] });
  } finally {
    worker.close();
    p.hub.close();
  }
});

test('rpc: an error reply from the worker rejects with its code', T, async () => {
  const p = probe(hub.url);
  await opened(p);
  const worker = await redis.client();
  try {
    const last = await lastInbound();
    const call = p.hub.rpc('todos.add', { title: '' });
    const inbound = await nextInbound(worker, last);
    const frame = { id: inbound.body['id'], ok: false, error: { code: 'VALIDATION_ERROR', message: 'title is required', details: { field: 'title' } } };
    await r.cmd('PUBLISH', `${PREFIX}hub:${inbound.hub}`, JSON.stringify({ v: 1, kind: 'reply', conn: inbound.conn, frame }));
    await assert.rejects(call, (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.code, 'VALIDATION_ERROR');
      assert.deepEqual(e.details, { field: 'title' });
      return true;
    });
  } finally {
    worker.close();
    p.hub.close();
  }
});

test('rpc timeout: a hub with --rpc-timeout-ms 300 and no worker answers TIMEOUT; the promise rejects', T, async () => {
  const slow = await new HubServer(redis, ['--rpc-timeout-ms', '300']).start();
  const p = probe(slow.url);
  await opened(p);
  const t0 = Date.now();
  await assert.rejects(p.hub.rpc('nobody.listens', {}, { timeout: 10_000 }), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.code, 'TIMEOUT');
    return true;
  });
  const ms = Date.now() - t0;
  assert.ok(ms >= 250 && ms < 5000, `rejected after ${ms} ms: the hub's TIMEOUT, not the client's 10 s`);
  const reply = p.got.find((f) => f['ok'] === false);
  assert.equal((reply?.['error'] as { code?: string } | undefined)?.code, 'TIMEOUT', 'the TIMEOUT came from the hub');
  p.hub.close();
  await slow.kill();
});

const SECRET = '0123456789abcdef0123456789abcdef-client-test';

/** An MWT-shaped HS256 token (kid v1), as the Django app mints them. */
function mwt(sub: string, ttl: number): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT', kid: 'v1' });
  const body = b64({ sub, iat: now, nbf: now, exp: now + ttl, aud: 'mizan', staff: false, super: false });
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

test('token auth through the auth frame, refreshed before expiry; without refresh the hub closes 4004', { timeout: 30_000 }, async () => {
  const authHub = await new HubServer(redis, ['--jwt-secret', SECRET, '--jwt-audience', 'mizan', '--expiry-warning', '2']).start();
  let minted = 0;
  // Tokens live 4 s; the client refreshes 2 s before `expires`.
  const p = probe(authHub.url, { token: async () => (minted++, mwt('5', 4)), refreshBefore: 2 });
  await opened(p);
  const authed = await waitFor('authed', () => p.got.find((f) => f['authed'] !== undefined));
  assert.deepEqual((authed['authed'] as { identity: unknown }).identity, { sub: '5', staff: false, super: false });
  // Past the first token's expiry: still open, because refresh frames went out.
  await sleep(6000);
  assert.equal(p.hub.state, 'open');
  // ...on the same connection: a 4004 followed by an instant reconnect would also end 'open'.
  assert.ok(!p.states.includes('reconnecting'), `states: ${p.states.join(' ')}`);
  assert.ok(p.sent.some((f) => f['action'] === 'refresh'), 'no refresh frame was sent');
  assert.ok(minted >= 2, `only ${minted} token(s) minted`);
  assert.ok(!p.got.some((f) => f['error'] !== undefined), JSON.stringify(p.got.filter((f) => f['error'] !== undefined)));

  // A client whose token source fails after the first token cannot refresh:
  // the hub warns (`expiring`) and then closes it with 4004.
  let calls = 0;
  const q = probe(authHub.url, {
    token: async () => {
      if (calls++ > 0) throw new Error('no more tokens');
      return mwt('6', 3);
    },
    refreshBefore: 0,
  });
  const codes: number[] = [];
  q.hub.onState(() => void (q.hub.reason && codes.push(q.hub.reason.code)));
  await opened(q);
  await waitFor('expiring', () => q.got.find((f) => f['expiring'] !== undefined), 6000);
  await waitFor('a close with 4004', () => codes.includes(4004), 8000);
});

test('first ack refetches once (SPEC 10), not with since, not again after a resubscribe', T, async () => {
  const p = probe(hub.url, { refetchOnAck: true });
  const plain: InvalidationEvent[] = [];
  const known: InvalidationEvent[] = [];
  p.hub.subscribe('ackctx', { k: 1 }, (e) => plain.push(e), { spread: false });
  await opened(p);
  const ack = await acked(p, 'ackctx');
  p.hub.subscribe('ackknown', {}, (e) => known.push(e), { spread: false, since: String(ack['version']) });
  await acked(p, 'ackknown');
  await waitFor('the ack refetch', () => plain.length === 1);
  assert.equal(plain[0]?.reason, 'ack');
  await sleep(300);
  assert.equal(plain.length, 1, 'refetched more than once');
  assert.equal(known.length, 0, 'a subscription with since refetched on its ack');
});
