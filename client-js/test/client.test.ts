/**
 * The runtime (`connect`) against an injected fake WebSocket, clock and
 * random source: one top-level test per behaviour of SPEC sections 6-10.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RpcError } from '@mizan/hub-client';
import type { ChannelMessage, Gap, InvalidationEvent } from '@mizan/hub-client';

import { FakeTarget, settle, setup, welcome } from './fake.js';
import type { Env, FakeSocket } from './fake.js';

/** Subscribes and records every event. */
function record(env: Env, context: string, params?: Record<string, string | number>, spread?: boolean) {
  const events: InvalidationEvent[] = [];
  const off = env.client.subscribe(context, params, (e) => events.push(e), spread === undefined ? undefined : { spread });
  return { events, off };
}

/** Drops the connection and lets the backoff timer fire, returning the new socket (not yet opened). */
function dropAndRedial(env: Env, code = 1006): FakeSocket {
  env.sock().drop(code, 'gone');
  env.clock.advance(60_000);
  return env.sock();
}

test('welcome: connecting until the welcome frame, then open with the welcome and identity', () => {
  const env = setup();
  assert.equal(env.client.state, 'connecting');
  assert.equal(env.client.reason, null);
  assert.equal(env.sockets.length, 1);
  assert.equal(env.sock().url, 'ws://hub.test/ws');
  assert.equal(env.sock().protocols, undefined);
  env.sock().open();
  assert.equal(env.client.state, 'connecting', 'not open before the welcome');
  const identity = { sub: '5', staff: false, super: false };
  welcome(env, { identity });
  assert.equal(env.client.state, 'open');
  assert.equal(env.client.welcome?.conn, '3f9c0a1b2c4d.17');
  assert.deepEqual(env.client.identity, identity);
  assert.deepEqual(env.states, [['open', null]]);
  assert.deepEqual(env.sock().sent, [], 'cookie auth sends nothing first');
});

test('subscribe: frames before and after open, normalized params, ack version tracked', async () => {
  const env = setup();
  env.client.subscribe('user', { user_id: 5 }, () => {});
  assert.deepEqual(env.sock().sent, [], 'nothing is sent before the welcome');
  const s = welcome(env);
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'user', params: { user_id: '5' } }]);
  env.client.subscribe('notifications', undefined, () => {});
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'notifications', params: {} }]);

  assert.equal(env.client.version('user'), undefined);
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'k2f9a:42' });
  assert.equal(env.client.version('user'), 'k2f9a:42');
  s.receive({ invalidate: ['notifications'], versions: { notifications: 'k2f9b:8' } });
  assert.equal(env.client.version('notifications'), 'k2f9b:8');
  await settle();
});

test('versions: the largest per context is kept; a new epoch replaces; counters past 2^53 compare exactly', () => {
  const env = setup();
  const s = welcome(env);
  env.client.subscribe('user', { user_id: 5 }, () => {});
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'e:5' });
  s.receive({ invalidate: ['user'], versions: { user: 'e:7' } });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '6' }, version: 'e:6' });
  assert.equal(env.client.version('user'), 'e:7', 'an older ack does not move the resume point back');
  s.receive({ invalidate: ['user'], versions: { user: 'e:10' } });
  assert.equal(env.client.version('user'), 'e:10', '10 > 7 numerically, not as text');
  s.receive({ invalidate: ['user'], versions: { user: 'f:1' } });
  assert.equal(env.client.version('user'), 'f:1', 'a new epoch (the hash was lost) replaces');
  s.receive({ invalidate: ['user'], versions: { user: 'f:9007199254740993' } });
  s.receive({ invalidate: ['user'], versions: { user: 'f:9007199254740992' } });
  assert.equal(env.client.version('user'), 'f:9007199254740993');
});

test('refcount: one server subscription per canonical key; the unsubscribe frame only at zero', async () => {
  const env = setup();
  const s = welcome(env);
  const a = env.client.subscribe('user', { user_id: 5 }, () => {});
  const b = env.client.subscribe('user', { user_id: '5' }, () => {});
  const c = env.client.subscribe('user', { user_id: 5.0 }, () => {});
  assert.equal(s.take('subscribe').length, 1, '5, "5" and 5.0 are one key');
  a();
  a(); // idempotent: does not release b's or c's reference
  await settle();
  assert.deepEqual(s.take(), []);
  b();
  await settle();
  assert.deepEqual(s.take(), []);
  c();
  assert.deepEqual(s.take(), [], 'the unsubscribe waits for the end of the microtask');
  await settle();
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', context: 'user', params: { user_id: '5' } }]);
});

test('refcount: unsubscribe and subscribe again in one tick (React StrictMode) sends nothing', async () => {
  const env = setup();
  const s = welcome(env);
  const off = env.client.subscribe('todos', {}, () => {});
  s.take();
  off();
  const events: InvalidationEvent[] = [];
  env.client.subscribe('todos', {}, (e) => events.push(e));
  await settle();
  assert.deepEqual(s.take(), []);
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:1' } });
  await settle();
  assert.equal(events.length, 1, 'the remounted subscriber still receives');
});

test('batching: one call per key per microtask, with the matching entries', async () => {
  const env = setup();
  const s = welcome(env);
  const u5 = record(env, 'user', { user_id: 5 });
  const u6 = record(env, 'user', { user_id: 6 });
  const u5b = record(env, 'user', { user_id: 5 });
  s.receive({ invalidate: [{ context: 'user', params: { user_id: 5 } }], versions: { user: 'e:1' } });
  s.receive({ invalidate: ['user'], versions: { user: 'e:2' } });
  assert.equal(u5.events.length, 0, 'not synchronous');
  await settle();
  assert.equal(u5.events.length, 1);
  assert.deepEqual(u5.events[0]?.entries, [{ context: 'user', params: { user_id: '5' } }, 'user']);
  assert.equal(u5.events[0]?.key, '["user",{"user_id":"5"}]');
  assert.deepEqual(u5.events[0]?.params, { user_id: '5' });
  assert.equal(u5.events[0]?.delay, 0);
  assert.equal(u5.events[0]?.reason, undefined);
  assert.equal(u5b.events.length, 1, 'every caller on the key is called');
  assert.equal(u6.events.length, 1);
  assert.deepEqual(u6.events[0]?.entries, ['user'], 'the unscoped entry matches every key of the context');
  s.receive({ invalidate: ['user'], versions: { user: 'e:3' } });
  await settle();
  assert.equal(u5.events.length, 2, 'a later tick is a new batch');
});

test('matching: SPEC section 4 (AND of named params, {} scoped matches all, other contexts never)', async () => {
  const env = setup();
  const s = welcome(env);
  const sub = record(env, 'user', { user_id: 5, tab: 'a' });
  const other = record(env, 'users', {});
  const cases: [unknown, boolean][] = [
    [{ context: 'user', params: { user_id: '5' } }, true],
    [{ context: 'user', params: { user_id: 5, tab: 'a' } }, true],
    [{ context: 'user', params: { user_id: 5, org: 1 } }, false],
    [{ context: 'user', params: { user_id: 6 } }, false],
    [{ context: 'user', params: {} }, true],
    [{ context: 'user' }, true],
    [{ context: 'user', params: { constructor: 'x' } }, false],
    ['users', false],
  ];
  for (const [entry, hit] of cases) {
    s.receive({ invalidate: [entry], versions: { user: 'e:1', users: 'e:1' } });
    await settle();
    assert.equal(sub.events.length, hit ? 1 : 0, JSON.stringify(entry));
    sub.events.length = 0;
  }
  assert.equal(other.events.length, 1);
});

test('spread: the callback waits random() × spread_ms, exposes the delay, and coalesces', async () => {
  const env = setup();
  const s = welcome(env, { spread_ms: 1000 });
  env.clock.advance(5000); // the stable-connection timer, out of the way
  const spread = record(env, 'todos');
  const now = record(env, 'todos', {}, false);
  env.randoms.push(0.25);
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:1' } });
  await settle();
  assert.equal(now.events.length, 1, '{spread: false} is called at once');
  assert.equal(now.events[0]?.delay, 0);
  assert.equal(spread.events.length, 0);
  env.clock.advance(249);
  assert.equal(spread.events.length, 0);
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:2' } });
  await settle();
  assert.equal(env.clock.timers.size, 1, 'a waiting call takes the new entries instead of a second timer');
  env.clock.advance(1);
  assert.equal(spread.events.length, 1);
  assert.equal(spread.events[0]?.delay, 250);
  assert.deepEqual(spread.events[0]?.entries, ['todos', 'todos']);

  env.randoms.push(0.5);
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:3' }, spread_ms: 100 });
  await settle();
  assert.deepEqual(env.clock.delays(), [50], "the frame's spread_ms overrides the welcome's");
  env.clock.advance(50);
  assert.equal(spread.events[1]?.delay, 50);

  s.receive({ invalidate: ['todos'], versions: { todos: 'e:4' }, spread_ms: 0 });
  await settle();
  assert.equal(spread.events.length, 3, 'spread_ms 0 (one recipient): no wait');
});

test('spread: an unsubscribed (unmounted) caller is not called back after its delay', async () => {
  const env = setup();
  const s = welcome(env, { spread_ms: 1000 });
  env.clock.advance(5000);
  const a = record(env, 'todos');
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:1' } });
  await settle();
  a.off();
  env.clock.advance(1000);
  assert.equal(a.events.length, 0);
  assert.equal(env.clock.timers.size, 0);
});

test('resume: after a drop every subscription is resent with since = its resume point', async () => {
  const env = setup();
  let s = welcome(env);
  record(env, 'user', { user_id: 5 });
  record(env, 'notifications');
  env.client.channel('chat', { room: 'lobby' });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'k2f9a:42' });
  s.receive({ subscribed: true, context: 'notifications', params: {}, version: '0:0' });
  s.receive({ subscribed: true, channel: 'chat', params: { room: 'lobby' }, epoch: 'm1x', seq: 17 });
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '5' } }], versions: { user: 'k2f9a:43' } });
  s.receive({ channel: 'chat', params: { room: 'lobby' }, type: 'ChatMessage', data: {}, seq: 18, epoch: 'm1x' });
  await settle();

  s.drop(1006, 'network');
  assert.equal(env.client.state, 'reconnecting');
  assert.deepEqual(env.client.reason, { code: 1006, reason: 'network' });
  env.clock.advance(60_000);
  s = welcome(env);
  assert.deepEqual(s.take(), [
    { action: 'subscribe', context: 'user', params: { user_id: '5' }, since: 'k2f9a:43' },
    { action: 'subscribe', context: 'notifications', params: {}, since: '0:0' },
    { action: 'subscribe', channel: 'chat', params: { room: 'lobby' }, since: 'm1x:18' },
  ]);
});

test('resume: the hub\'s {"reason":"resume"} invalidation fires the callback (no context stays stale)', async () => {
  const env = setup();
  let s = welcome(env, { spread_ms: 0 });
  const sub = record(env, 'user', { user_id: 5 });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'k2f9a:42' });
  s = dropAndRedial(env);
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'other', conn: 'other.1', identity: null, expires: null, spread_ms: 0 } });
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '5' } }], reason: 'resume', versions: { user: 'k2f9a:50' } });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'k2f9a:50' });
  await settle();
  assert.equal(sub.events.length, 1);
  assert.equal(sub.events[0]?.reason, 'resume');
  assert.equal(env.client.version('user'), 'k2f9a:50');
});

test('resume: a subscription made while down heals from the known version, else from 0:0', async () => {
  const env = setup();
  let s = welcome(env);
  record(env, 'user', { user_id: 5 });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'e:9' });
  s.drop(1006);
  record(env, 'user', { user_id: 6 }); // mounted during the outage
  record(env, 'feed'); // a context this tab never had a version of
  env.clock.advance(60_000);
  s = welcome(env);
  assert.deepEqual(s.take(), [
    { action: 'subscribe', context: 'user', params: { user_id: '5' }, since: 'e:9' },
    { action: 'subscribe', context: 'user', params: { user_id: '6' }, since: 'e:9' },
    { action: 'subscribe', context: 'feed', params: {}, since: '0:0' },
  ]);
  s.receive({ subscribed: true, context: 'feed', params: {}, version: 'f:3' });
  s = dropAndRedial(env);
  s.open();
  s.receive({ welcome: { ...{ protocol: 1, hub: 'h', conn: 'h.2', identity: null, expires: null, spread_ms: 0 } } });
  assert.deepEqual(
    s.take().find((f) => f['context'] === 'feed'),
    { action: 'subscribe', context: 'feed', params: {}, since: 'f:3' },
  );
});

test('resume: a first subscription on the first connection carries no since unless given one', () => {
  const env = setup();
  env.client.subscribe('todos', {}, () => {});
  env.client.subscribe('user', { user_id: 1 }, () => {}, { since: 'ssr:7' });
  const s = welcome(env);
  assert.deepEqual(s.take(), [
    { action: 'subscribe', context: 'todos', params: {} },
    { action: 'subscribe', context: 'user', params: { user_id: '1' }, since: 'ssr:7' },
  ]);
});

test('channels: seq not above the last processed in the same epoch is dropped; a new epoch is taken', () => {
  const env = setup();
  const s = welcome(env);
  const ch = env.client.channel('chat', { room: 'lobby' });
  const got: ChannelMessage[] = [];
  ch.on((m) => got.push(m));
  s.receive({ subscribed: true, channel: 'chat', params: { room: 'lobby' }, epoch: 'm1x', seq: 17 });
  const msg = (seq: number, epoch = 'm1x') => ({
    channel: 'chat',
    params: { room: 'lobby' },
    type: 'ChatMessage',
    data: { seq },
    seq,
    epoch,
  });
  s.receive(msg(17)); // before the subscription: dropped
  s.receive(msg(18));
  s.receive({ ...msg(19), ts: 1764000000123.5 });
  s.receive(msg(18)); // replay overlapping live delivery
  s.receive(msg(19));
  s.receive(msg(20));
  s.receive(msg(2, 'n2y')); // the stream was reset: new epoch
  s.receive(msg(2, 'n2y'));
  assert.deepEqual(
    got.map((m) => [m.epoch, m.seq]),
    [
      ['m1x', 18],
      ['m1x', 19],
      ['m1x', 20],
      ['n2y', 2],
    ],
  );
  assert.deepEqual(got[0], { type: 'ChatMessage', data: { seq: 18 }, epoch: 'm1x', seq: 18 });
  assert.equal(got[1]?.ts, 1764000000123.5);
  s.receive({ channel: 'chat', params: { room: 'lobby' }, type: 'Hello', data: {} });
  assert.deepEqual(got[4], { type: 'Hello', data: {} }, 'a worker-sent frame without seq is delivered as is');
  s.receive({ channel: 'chat', params: { room: 'other' }, type: 'X', data: 1, seq: 99, epoch: 'm1x' });
  assert.equal(got.length, 5, 'another instance of the channel is not this one');
});

test('channels: gap frames reach the gap listeners of that instance', () => {
  const env = setup();
  const s = welcome(env);
  const ch = env.client.channel('chat', { room: 'lobby' });
  const gaps: Gap[] = [];
  const off = ch.onGap((g) => gaps.push(g));
  const gap = { from: 18, to: 25, recovered: false, reason: 'history_trimmed' };
  s.receive({ gap: { channel: 'chat', params: { room: 'lobby' }, ...gap } });
  s.receive({ gap: { channel: 'chat', params: { room: 'elsewhere' }, ...gap } });
  assert.deepEqual(gaps, [gap]);
  off();
  s.receive({ gap: { channel: 'chat', params: { room: 'lobby' }, ...gap } });
  assert.equal(gaps.length, 1);
});

test('channels: send, shared subscription, close; messages queued while down go after the resubscribe', async () => {
  const env = setup();
  let s = welcome(env);
  const a = env.client.channel('chat', { room: 'lobby' });
  const b = env.client.channel('chat', { room: 'lobby' });
  assert.equal(a.key, '["chat",{"room":"lobby"}]');
  assert.deepEqual(s.take(), [{ action: 'subscribe', channel: 'chat', params: { room: 'lobby' } }]);
  a.send({ text: 'hi' });
  b.send();
  assert.deepEqual(s.take(), [
    { action: 'message', channel: 'chat', params: { room: 'lobby' }, data: { text: 'hi' } },
    { action: 'message', channel: 'chat', params: { room: 'lobby' }, data: null },
  ]);
  const got: unknown[] = [];
  b.on((m) => got.push(m.data));
  a.on((m) => got.push(m.data));
  a.close();
  a.close();
  assert.throws(() => a.send('x'), /closed/);
  s.receive({ channel: 'chat', params: { room: 'lobby' }, type: 't', data: 1 });
  assert.deepEqual(got, [1], "a closed handle's listeners are gone, the other's stay");
  await settle();
  assert.deepEqual(s.take(), [], 'b still holds the subscription');

  s.drop(1006);
  b.send('while down');
  env.clock.advance(60_000);
  s = welcome(env);
  assert.deepEqual(s.take(), [
    { action: 'subscribe', channel: 'chat', params: { room: 'lobby' } },
    { action: 'message', channel: 'chat', params: { room: 'lobby' }, data: 'while down' },
  ]);
  b.close();
  await settle();
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', channel: 'chat', params: { room: 'lobby' } }]);
});

test('rpc: resolves data; ids are positive integers; the frame is SPEC section 7\'s', async () => {
  const env = setup();
  const s = welcome(env);
  const p = env.client.rpc('todos.add', { title: 'milk' });
  const [frame] = s.take();
  assert.deepEqual(frame, { action: 'rpc', fn: 'todos.add', args: { title: 'milk' }, id: 1, ref: 1 });
  s.receive({ id: 1, ok: true, data: { result: { id: 3 }, invalidate: ['todos'] } });
  assert.deepEqual(await p, { result: { id: 3 }, invalidate: ['todos'] });
  const q = env.client.ctx('user', { user_id: 5 });
  assert.deepEqual(s.take(), [{ action: 'ctx', context: 'user', params: { user_id: '5' }, id: 2, ref: 2 }]);
  s.receive({ id: 2, ok: true, data: { profile: {} } });
  assert.deepEqual(await q, { profile: {} });
  assert.equal(env.clock.timers.size, 1, 'only the stable-connection timer is left');
});

test('rpc: rejects with the reply error code (upper case), message and details', async () => {
  const env = setup();
  const s = welcome(env);
  const p = env.client.rpc('todos.add');
  assert.deepEqual(s.take()[0]?.['args'], {});
  s.receive({ id: 1, ok: false, error: { code: 'FORBIDDEN', message: 'HTTP-only', details: { why: 1 } } });
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RpcError && e instanceof Error);
    assert.equal(e.code, 'FORBIDDEN');
    assert.equal(e.message, 'FORBIDDEN: HTTP-only');
    assert.deepEqual(e.details, { why: 1 });
    return true;
  });
  const q = env.client.rpc('slow');
  s.receive({ id: 2, ok: false, error: { code: 'UNAVAILABLE', message: 'redis down' } });
  await assert.rejects(q, { code: 'UNAVAILABLE' });
});

test('rpc: TIMEOUT when the client-side timeout passes first; a late reply is ignored', async () => {
  const env = setup({ rpcTimeout: 1000 });
  const s = welcome(env);
  const p = env.client.rpc('slow', {});
  const q = env.client.rpc('slower', {}, { timeout: 5000 });
  env.clock.advance(1000);
  await assert.rejects(p, { name: 'RpcError', code: 'TIMEOUT' });
  s.receive({ id: 1, ok: true, data: 'late' });
  env.clock.advance(4000);
  await assert.rejects(q, { code: 'TIMEOUT' });
});

test('rpc: queued while down and sent on open; a sent call rejects DISCONNECTED on a drop; close rejects the rest', async () => {
  const env = setup();
  const queued = env.client.rpc('a');
  let s = welcome(env);
  assert.deepEqual(s.take('rpc').map((f) => f['fn']), ['a']);
  s.drop(1006);
  await assert.rejects(queued, { code: 'DISCONNECTED' });
  const later = env.client.rpc('b', [1, 2]);
  env.clock.advance(1000); // the first retry waits at most baseDelay (500 ms); the call's timeout is 35 s
  s = welcome(env);
  assert.deepEqual(s.take('rpc'), [{ action: 'rpc', fn: 'b', args: [1, 2], id: 2, ref: 2 }]);
  s.receive({ id: 2, ok: true, data: null });
  assert.equal(await later, null);
  s.drop(1006);
  const pending = env.client.rpc('c');
  env.client.close();
  await assert.rejects(pending, { code: 'DISCONNECTED' });
});

test('auth: the token goes in the first frame; open only after authed; then the subscriptions', async () => {
  let calls = 0;
  const env = setup({ token: async () => `tok${++calls}` });
  env.client.subscribe('user', { user_id: 5 }, () => {});
  await settle();
  const s = env.sock();
  s.open();
  assert.deepEqual(s.take(), [{ action: 'auth', token: 'tok1', ref: 'auth' }]);
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.1', identity: null, expires: null, spread_ms: 0 } });
  assert.equal(env.client.state, 'connecting', 'the welcome alone is not enough with a token');
  assert.deepEqual(s.take(), []);
  const identity = { sub: '5', staff: false, super: false };
  s.receive({ authed: { identity, expires: 1764000300, ref: 'auth' } });
  assert.equal(env.client.state, 'open');
  assert.deepEqual(env.client.identity, identity);
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'user', params: { user_id: '5' } }]);
});

test('auth: the hub\'s expiring frame triggers a refresh with a new token', async () => {
  let calls = 0;
  const env = setup({ token: async () => `tok${++calls}`, refreshBefore: 0 });
  await settle();
  const s = env.sock();
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.1', identity: null, expires: null, spread_ms: 0 } });
  s.receive({ authed: { identity: { sub: '5', staff: false, super: false }, expires: 1764000300 } });
  s.take();
  s.receive({ expiring: { expires: 1764000300, in: 30 } });
  s.receive({ expiring: { expires: 1764000300, in: 30 } }); // one refresh at a time
  await settle();
  assert.deepEqual(s.take(), [{ action: 'refresh', token: 'tok2', ref: 'refresh' }]);
  s.receive({ authed: { identity: { sub: '5', staff: false, super: false }, expires: 1764000600, ref: 'refresh' } });
  assert.equal(env.client.state, 'open');
  assert.equal(calls, 2);
});

test('auth: a refresh is planned refreshBefore seconds before expires', async () => {
  let calls = 0;
  const env = setup({ token: async () => `tok${++calls}` }); // refreshBefore 60 s
  await settle();
  const s = env.sock();
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.1', identity: null, expires: null, spread_ms: 0 } });
  const expires = env.clock.t / 1000 + 300;
  s.receive({ authed: { identity: { sub: '5', staff: false, super: false }, expires } });
  s.take();
  env.clock.advance(239_999);
  await settle();
  assert.deepEqual(s.take(), []);
  env.clock.advance(1);
  await settle();
  assert.deepEqual(s.take(), [{ action: 'refresh', token: 'tok2', ref: 'refresh' }]);
  s.receive({ authed: { identity: { sub: '5', staff: false, super: false }, expires } });
  env.clock.advance(120_000);
  await settle();
  assert.deepEqual(s.take(), [], 'an unchanged expires plans no refresh loop');
});

test('auth: an error answering the auth frame closes with 4001 and does not retry', async () => {
  const env = setup({ token: async () => 'bad' });
  await settle();
  const s = env.sock();
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.1', identity: null, expires: null, spread_ms: 0 } });
  s.receive({ error: { code: 'bad_token', message: 'signature mismatch' }, ref: 'auth' });
  assert.equal(env.client.state, 'closed');
  assert.deepEqual(env.client.reason, { code: 4001, reason: 'signature mismatch' });
  assert.deepEqual(s.closed, { code: 4001, reason: 'signature mismatch' });
  assert.equal(env.clock.timers.size, 0);
});

for (const code of [4001, 4003, 4005]) {
  test(`close ${code}: no automatic retry (not on online/visibility either); reconnect() tries again`, async () => {
    const env = setup();
    const s = welcome(env);
    s.drop(code, 'no');
    assert.equal(env.client.state, 'closed');
    assert.deepEqual(env.client.reason, { code, reason: 'no' });
    assert.equal(env.clock.timers.size, 0);
    env.win.dispatch('online');
    env.doc.dispatch('visibilitychange');
    env.clock.advance(3_600_000);
    assert.equal(env.sockets.length, 1);
    env.client.reconnect();
    assert.equal(env.sockets.length, 2);
    assert.equal(env.client.state, 'reconnecting');
    welcome(env);
    assert.equal(env.client.state, 'open');
  });
}

test('close 4004: token expired, so a fresh token is fetched and the retry is immediate', async () => {
  let calls = 0;
  const env = setup({ token: async () => `tok${++calls}` });
  await settle();
  let s = env.sock();
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.1', identity: null, expires: null, spread_ms: 0 } });
  s.receive({ authed: { identity: null, expires: null } });
  s.drop(4004, 'token expired');
  assert.equal(env.client.state, 'reconnecting');
  assert.deepEqual(env.clock.delays(), [0]);
  env.clock.advance(0);
  await settle();
  s = env.sock();
  s.open();
  assert.deepEqual(s.take(), [{ action: 'auth', token: 'tok2', ref: 'auth' }]);
});

test('close 1012 (drain): reconnect after random() × drainDelay', () => {
  const env = setup({ drainDelay: 4000 });
  const s = welcome(env);
  env.randoms.push(0.75);
  s.drop(1012, 'draining');
  assert.deepEqual(env.states.at(-1), ['reconnecting', 1012]);
  assert.deepEqual(env.clock.delays(), [3000]);
  env.clock.advance(2999);
  assert.equal(env.sockets.length, 1);
  env.clock.advance(1);
  assert.equal(env.sockets.length, 2);
});

test('backoff: full jitter, random() × min(maxDelay, baseDelay × 2^n), capped; a stable connection resets it', () => {
  const env = setup({ baseDelay: 100, maxDelay: 1000, stableAfter: 5000 });
  const delays: number[] = [];
  const fail = (r: number) => {
    env.randoms.push(r);
    env.sock().drop(1006);
    const [d] = env.clock.delays();
    delays.push(d as number);
    env.clock.advance(d as number);
  };
  for (let i = 0; i < 6; i++) fail(1);
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000], 'random() = 1: the ceiling, doubling to the cap');
  delays.length = 0;
  fail(0);
  fail(0.5);
  assert.deepEqual(delays, [0, 500]);
  assert.equal(env.client.state, 'connecting', 'never opened yet');

  welcome(env);
  env.clock.advance(4999);
  delays.length = 0;
  fail(1);
  assert.deepEqual(delays, [1000], 'open for less than stableAfter: no reset');
  welcome(env);
  env.clock.advance(5000);
  delays.length = 0;
  fail(1);
  assert.deepEqual(delays, [100], 'open for stableAfter: back to baseDelay');
  assert.equal(env.client.state, 'reconnecting');
});

test('backoff: a token() failure is a failed attempt, retried with backoff', async () => {
  let fail = true;
  const env = setup({ token: async () => (fail ? Promise.reject(new Error('offline')) : 'tok') });
  await settle();
  assert.equal(env.sockets.length, 0);
  assert.equal(env.client.state, 'connecting');
  assert.equal(env.client.reason?.code, 1006);
  assert.match(env.client.reason?.reason ?? '', /token: Error: offline/);
  fail = false;
  env.clock.advance(60_000);
  await settle();
  assert.equal(env.sockets.length, 1);
});

test('online and visibilitychange (to visible) retry at once during a backoff wait', () => {
  const env = setup();
  welcome(env);
  env.sock().drop(1006);
  assert.equal(env.clock.timers.size, 1);
  env.win.dispatch('online');
  assert.equal(env.sockets.length, 2, 'online: dialled without waiting');
  assert.equal(env.clock.timers.size, 0, 'the backoff timer is cancelled');
  env.win.dispatch('online');
  assert.equal(env.sockets.length, 2, 'no second dial while one is in progress');

  env.sock().drop(1006);
  env.doc.visibilityState = 'hidden';
  env.doc.dispatch('visibilitychange');
  assert.equal(env.sockets.length, 2, 'hidden: keep waiting');
  env.doc.visibilityState = 'visible';
  env.doc.dispatch('visibilitychange');
  assert.equal(env.sockets.length, 3);

  welcome(env);
  env.win.dispatch('online');
  assert.equal(env.sockets.length, 3, 'open: nothing to do');
  env.client.close();
  assert.equal(env.win.count('online'), 0, 'close() removes the listeners');
  assert.equal(env.doc.count('visibilitychange'), 0);
});

test('environments without window/document: the listeners are skipped', () => {
  const g = globalThis as { window?: unknown; document?: unknown };
  assert.equal(g.window, undefined);
  assert.equal(g.document, undefined);
  const env = setup({ window: undefined, document: undefined } as never);
  welcome(env);
  env.sock().drop(1006);
  env.clock.advance(60_000);
  assert.equal(env.sockets.length, 2);
});

test('close(): closes the socket with 1000, state closed, no retry', () => {
  const env = setup();
  const s = welcome(env);
  env.client.close();
  assert.deepEqual(s.closed, { code: 1000, reason: 'client closed' });
  assert.equal(env.client.state, 'closed');
  assert.deepEqual(env.client.reason, { code: 1000, reason: 'client closed' });
  s.drop(1000); // the close event that follows is ignored
  env.clock.advance(3_600_000);
  assert.equal(env.sockets.length, 1);
  assert.deepEqual(env.states, [
    ['open', null],
    ['closed', 1000],
  ]);
});

test('invalidate(source): a fetch response (Headers, body or header value) goes through invalidationsFrom, without spread', async () => {
  const env = setup();
  welcome(env, { spread_ms: 5000 });
  const user = record(env, 'user', { user_id: 5 });
  const notes = record(env, 'notifications');
  env.client.invalidate(new Headers({ 'X-Mizan-Invalidate': 'user;user_id=5, notifications' }));
  env.client.invalidate({ result: 1, invalidate: [{ context: 'user', params: { user_id: 5 } }] });
  env.client.invalidate('notifications');
  await settle();
  assert.equal(user.events.length, 1);
  assert.deepEqual(user.events[0]?.entries, [
    { context: 'user', params: { user_id: '5' } },
    { context: 'user', params: { user_id: '5' } },
  ]);
  assert.equal(user.events[0]?.delay, 0);
  assert.deepEqual(notes.events[0]?.entries, ['notifications', 'notifications']);
  assert.throws(() => env.client.invalidate('a b'), { name: 'ProtocolError', code: 'bad_header' });
});

test('pushed frames: a malformed invalidation is ignored; error frames reach onError; every frame reaches onFrame', async () => {
  const env = setup();
  const s = welcome(env);
  const sub = record(env, 'user', { user_id: 5 });
  const errors: unknown[] = [];
  const frames: unknown[] = [];
  env.client.onError((e) => errors.push(e));
  const off = env.client.onFrame((f) => frames.push(f));
  s.receive({ invalidate: [{ context: 'user', params: { user_id: { nested: 1 } } }] });
  s.receive('not json');
  s.receive({ error: { code: 'forbidden', message: 'no' }, context: 'user', params: { user_id: '5' } });
  s.receive({ type: 'push', topic: 't', data: {} });
  s.receive({ pong: true, ref: 4 });
  await settle();
  assert.equal(sub.events.length, 0);
  assert.deepEqual(errors, [{ error: { code: 'forbidden', message: 'no' }, context: 'user', params: { user_id: '5' } }]);
  assert.equal(frames.length, 4);
  off();
  s.receive({ pong: true });
  assert.equal(frames.length, 4);
});

test('subscribe and channel refuse bad names and params synchronously (ProtocolError)', () => {
  const env = setup();
  assert.throws(() => env.client.subscribe('', {}, () => {}), { code: 'bad_name' });
  assert.throws(() => env.client.subscribe('user', { a: {} as never }, () => {}), { code: 'bad_param' });
  assert.throws(() => env.client.channel('a\u0000b'), { code: 'bad_name' });
});

test('options: protocols are passed to the WebSocket constructor', () => {
  const env = setup({ protocols: 'mizan.v1' });
  assert.equal(env.sock().protocols, 'mizan.v1');
  const t = new FakeTarget();
  assert.equal(t.count('x'), 0);
});

test('resume: a subscription sent but not acked before a drop heals from 0:0 (no version known)', () => {
  const env = setup();
  let s = welcome(env);
  record(env, 'feed');
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'feed', params: {} }]);
  s = dropAndRedial(env); // dropped before the ack: events may have been missed meanwhile
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.2', identity: null, expires: null, spread_ms: 0 } });
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'feed', params: {}, since: '0:0' }]);
  s.receive({ subscribed: true, context: 'feed', params: {}, version: 'f:3' });
  record(env, 'other');
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'other', params: {} }], 'made while open: no since');
});

test('spread: a local invalidate() (no spread) calls a waiting subscriber at once, with the waiting entries', async () => {
  const env = setup();
  const s = welcome(env, { spread_ms: 1000 });
  env.clock.advance(5000);
  const sub = record(env, 'todos');
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:1' } });
  await settle();
  assert.equal(env.clock.timers.size, 1);
  env.client.invalidate({ invalidate: [{ context: 'todos', params: {} }] });
  await settle();
  assert.equal(sub.events.length, 1);
  assert.deepEqual(sub.events[0]?.entries, ['todos', { context: 'todos', params: {} }]);
  assert.equal(env.clock.timers.size, 0, 'the delayed call is cancelled, not made twice');
  env.clock.advance(1000);
  assert.equal(sub.events.length, 1);
});

test('rpc: an error frame the hub sends for the rpc frame (echoing ref) rejects the call with that code', async () => {
  const env = setup();
  const s = welcome(env);
  const p = env.client.rpc('todos.add', { title: 'x' });
  const [frame] = s.take();
  assert.equal(frame?.['ref'], frame?.['id']);
  s.receive({ error: { code: 'rate_limited', message: 'slow down' }, ref: frame?.['ref'] as number });
  await assert.rejects(p, { name: 'RpcError', code: 'rate_limited', message: 'rate_limited: slow down' });
});

test('rpc: a bad function name or args rejects before anything is sent', async () => {
  const env = setup();
  const s = welcome(env);
  await assert.rejects(env.client.rpc(''), { name: 'ProtocolError', code: 'bad_name' });
  await assert.rejects(env.client.rpc('f', 5 as never), { name: 'ProtocolError', code: 'bad_frame' });
  await assert.rejects(env.client.rpc('f', null as never), { name: 'ProtocolError', code: 'bad_frame' });
  await assert.rejects(env.client.ctx('user', { a: [] as never }), { code: 'bad_param' });
  assert.deepEqual(s.take(), []);
});

test("resume: an acked subscription resumes from its own ack or in-order frames, never another subscription's ack", () => {
  const env = setup();
  let s = welcome(env);
  record(env, 'user', { user_id: 5 });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'e:40' });
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '5' } }], versions: { user: 'e:45' } });
  // B's ack is read from Redis at 50 while event 49 (for user 5 only) may still be on its way.
  record(env, 'user', { user_id: 6 });
  s.receive({ subscribed: true, context: 'user', params: { user_id: '6' }, version: 'e:50' });
  // A healing frame's version is a Redis read too.
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '6' } }], reason: 'gap', versions: { user: 'e:52' } });
  assert.equal(env.client.version('user'), 'e:52', 'the context-wide point takes every source');
  s = dropAndRedial(env);
  s.open();
  s.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.2', identity: null, expires: null, spread_ms: 0 } });
  assert.deepEqual(s.take(), [
    { action: 'subscribe', context: 'user', params: { user_id: '5' }, since: 'e:45' },
    { action: 'subscribe', context: 'user', params: { user_id: '6' }, since: 'e:50' },
  ]);
  record(env, 'user', { user_id: 7 });
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'user', params: { user_id: '7' }, since: 'e:52' }], 'a new one uses the context-wide point');
});

test("Mizan's consumer: a string error reaches onError; an id-less channel message and a push frame do no harm", async () => {
  const env = setup();
  const s = welcome(env);
  const errors: unknown[] = [];
  env.client.onError((e) => errors.push(e.error));
  const ch = env.client.channel('chat', { room: 'lobby' });
  const got: unknown[] = [];
  ch.on((m) => got.push(m));
  s.receive({ error: 'Unknown channel: chat' });
  s.receive({ subscribed: true, channel: 'chat', params: { room: 'lobby' } }); // no epoch/seq
  s.receive({ channel: 'chat', params: { room: 'lobby' }, type: 'message', data: {} });
  s.receive({ type: 'push', topic: 't', data: {} });
  const p = env.client.rpc('f');
  s.receive({ id: 1, ok: false, error: { code: 'VALIDATION_ERROR', message: 'title', details: { title: ['required'] } } });
  await assert.rejects(p, { code: 'VALIDATION_ERROR' });
  assert.deepEqual(errors, ['Unknown channel: chat']);
  assert.deepEqual(got, [{ type: 'message', data: {} }]);
});

test('ended by the hub: an unsubscribed error frame stops resubscribing until asked anew (SPEC 8)', async () => {
  const env = setup();
  const errors: unknown[] = [];
  env.client.onError((e) => errors.push(e));
  env.client.subscribe('admin_stats', undefined, () => {});
  env.client.subscribe('todos', undefined, () => {});
  const s = welcome(env);
  s.take();
  // a refresh dropped staff: the hub ends the staff-only subscription
  s.receive({ unsubscribed: true, context: 'admin_stats', params: {}, error: { code: 'forbidden', message: 'staff only' } });
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { unsubscribed?: boolean }).unsubscribed, true);
  const s2 = dropAndRedial(env);
  s2.open();
  s2.receive({ welcome: { protocol: 1, hub: 'h', conn: 'h.2', identity: null, expires: null, spread_ms: 0, max_frame: 65536 } });
  const sent = s2.take() as { context?: string }[];
  assert.deepEqual(sent.map((f) => f.context), ['todos'], 'the ended subscription is not sent again');
  // subscribing to it anew asks again
  env.client.subscribe('admin_stats', undefined, () => {});
  assert.deepEqual((s2.take() as { context?: string }[]).map((f) => f.context), ['admin_stats']);
});

test('rate_limited on a resubscribe: asked again after a pause, not dropped (SPEC 14)', async () => {
  const env = setup();
  const ch = env.client.channel('chat', { room: 'a' });
  const s = welcome(env);
  assert.equal((s.take() as { channel?: string }[])[0]?.channel, 'chat');
  s.receive({ error: { code: 'rate_limited', message: 'too many resumes' }, channel: 'chat', params: { room: 'a' } });
  assert.deepEqual(s.take(), [], 'not at once');
  env.clock.advance(1_600);
  assert.deepEqual(s.take(), [{ action: 'subscribe', channel: 'chat', params: { room: 'a' } }]);
  ch.close();
});
