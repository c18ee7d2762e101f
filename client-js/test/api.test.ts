/**
 * The public API's typing and the calls' edges: `rpc<T>()` / `ctx<T>()`
 * generics, `RpcErrorCode`, an `AbortSignal` on rpc (before sending, while
 * queued, after sending), and `connect()` where there is no WebSocket.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RpcError, connect } from '@mizan/hub-client';
import type { HubClient, RpcErrorCode } from '@mizan/hub-client';

import { setup, welcome } from './fake.js';

/** Compile-time equality: `Expect<Equal<A, B>>` fails to type-check unless A and B are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

interface Todo {
  id: number;
  title: string;
}

// Type-level checks: tsc fails the build (and ci-test) when these stop holding.
export type TypeChecks = [
  Expect<Equal<ReturnType<HubClient['rpc']>, Promise<unknown>>>,
  Expect<Equal<ReturnType<typeof typedRpc>, Promise<Todo>>>,
  Expect<Equal<RpcError['code'], RpcErrorCode>>,
];
function typedRpc(hub: HubClient) {
  return hub.rpc<Todo>('todos.add', { title: 'milk' });
}

/** What a caller writes: a switch over the named codes, each narrowed. */
function describe(e: RpcError): string {
  switch (e.code) {
    case 'TIMEOUT':
    case 'DISCONNECTED':
      return 'retry';
    case 'ABORTED':
      return 'cancelled';
    case 'FORBIDDEN':
      return 'log in';
    default:
      return 'other';
  }
}

test('rpc<T>: resolves the typed data; ctx<T> too', async () => {
  const env = setup();
  const s = welcome(env);
  const p = typedRpc(env.client);
  s.receive({ id: 1, ok: true, data: { id: 3, title: 'milk' } });
  const todo: Todo = await p;
  assert.equal(todo.title, 'milk');
  const q = env.client.ctx<{ name: string }>('user', { user_id: 5 });
  s.receive({ id: 2, ok: true, data: { name: 'ann' } });
  assert.equal((await q).name, 'ann');
  assert.equal(describe(new RpcError('ABORTED', 'x')), 'cancelled');
  assert.equal(describe(new RpcError('SOMETHING_ELSE', 'x')), 'other'); // the list stays open
});

test('rpc signal: already aborted rejects ABORTED (the reason in details) and sends nothing', async () => {
  const env = setup();
  const s = welcome(env);
  s.take();
  const ac = new AbortController();
  ac.abort('left the page');
  await assert.rejects(env.client.rpc('todos.add', {}, { signal: ac.signal }), (e: unknown) => {
    assert.ok(e instanceof RpcError);
    assert.equal(e.code, 'ABORTED');
    assert.equal(e.details, 'left the page');
    return true;
  });
  assert.deepEqual(s.take(), []);
  assert.equal(env.clock.timers.size, 1, 'no rpc timer left behind (only the stable-connection timer)');
});

/** An AbortSignal whose registered listeners can be counted. */
function counted() {
  const ac = new AbortController();
  const listening = new Set<() => void>();
  const signal = {
    get aborted() {
      return ac.signal.aborted;
    },
    get reason() {
      return ac.signal.reason as unknown;
    },
    addEventListener: (t: 'abort', l: () => void) => (listening.add(l), ac.signal.addEventListener(t, l)),
    removeEventListener: (t: 'abort', l: () => void) => (listening.delete(l), ac.signal.removeEventListener(t, l)),
  };
  return { ac, signal, listening };
}

test('rpc signal: aborting a sent call rejects ABORTED at once, ignores the late reply, and stops listening', async () => {
  const env = setup();
  const s = welcome(env);
  const a = counted();
  const p = env.client.rpc('slow', {}, { signal: a.signal });
  assert.equal(s.take('rpc').length, 1);
  assert.equal(a.listening.size, 1);
  a.ac.abort();
  await assert.rejects(p, { code: 'ABORTED' });
  assert.equal(a.listening.size, 0);
  s.receive({ id: 1, ok: true, data: 'late' }); // no effect, no throw
  // A call that completes stops listening too.
  const b = counted();
  const q = env.client.rpc('fast', {}, { signal: b.signal });
  assert.equal(b.listening.size, 1);
  s.receive({ id: 2, ok: true, data: 1 });
  assert.equal(await q, 1);
  assert.equal(b.listening.size, 0);
  b.ac.abort(); // after the reply: nothing happens
  // An aborted signal is never listened to.
  await assert.rejects(env.client.rpc('fast', {}, { signal: a.signal }), { code: 'ABORTED' });
  assert.equal(a.listening.size, 0);
});

test('rpc signal: a call aborted while queued (connection down) is never sent', async () => {
  const env = setup();
  const ac = new AbortController();
  const p = env.client.rpc('queued', {}, { signal: ac.signal });
  const kept = env.client.rpc('kept');
  ac.abort();
  await assert.rejects(p, { code: 'ABORTED' });
  const s = welcome(env);
  assert.deepEqual(s.take('rpc').map((f) => f['fn']), ['kept']);
  s.receive({ id: 2, ok: true, data: null });
  assert.equal(await kept, null);
});

test('connect without a WebSocket (SSR, old Node) throws a clear error at once instead of retrying', () => {
  const g = globalThis as { WebSocket?: unknown };
  const saved = g.WebSocket;
  delete g.WebSocket;
  try {
    assert.throws(() => connect({ url: 'ws://127.0.0.1:1/' }), /no WebSocket.*connect\(\{WebSocket\}\)/);
  } finally {
    if (saved !== undefined) g.WebSocket = saved;
  }
});
