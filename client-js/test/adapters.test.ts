/**
 * The adapters call the right library methods, only for subscribed keys:
 * Mizan's runtime (assumed `registerContext(name, params, refetch)`),
 * TanStack Query (`invalidateQueries`, checked against the real
 * @tanstack/query-core too) and SWR (`mutate`, its real type checked).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { QueryClient, QueryObserver } from '@tanstack/query-core';
import { mutate as swrMutate } from 'swr';

import { mizanAdapter } from '@mizan/hub-client/mizan';
import type { MizanRuntime } from '@mizan/hub-client/mizan';
import { swrAdapter } from '@mizan/hub-client/swr';
import type { SWRMutate } from '@mizan/hub-client/swr';
import { tanstackAdapter } from '@mizan/hub-client/tanstack';
import type { QueryClientLike } from '@mizan/hub-client/tanstack';

import { settle, setup, welcome } from './fake.js';

// Compile-time: the libraries' own objects fit the adapters' parameter types.
export const realQueryClientFits: QueryClientLike = new QueryClient();
export const realSwrMutateFits: SWRMutate = swrMutate;

/** Lets TanStack's notifyManager (setTimeout 0 batches) run. */
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

test('mizan adapter: registerContext registers with the runtime, subscribes, refetches, and undoes both', async () => {
  const env = setup();
  const s = welcome(env);
  const registered: unknown[][] = [];
  let unregistered = 0;
  const runtime: MizanRuntime = {
    registerContext(name, params, refetch) {
      registered.push([name, params, refetch]);
      return () => void unregistered++;
    },
  };
  let refetches = 0;
  const refetch = () => void refetches++;
  const adapted = mizanAdapter(env.client, runtime);
  const off = adapted.registerContext('user', { user_id: 5 }, refetch);
  assert.deepEqual(registered, [['user', { user_id: 5 }, refetch]]);
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'user', params: { user_id: '5' } }]);
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '5' } }], versions: { user: 'e:1' } });
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '6' } }], versions: { user: 'e:2' } });
  await settle();
  assert.equal(refetches, 1, 'only the matching key refetches');
  off();
  await settle();
  assert.equal(unregistered, 1);
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', context: 'user', params: { user_id: '5' } }]);
  s.receive({ invalidate: ['user'], versions: { user: 'e:3' } });
  await settle();
  assert.equal(refetches, 1, 'an unmounted context does not refetch');

  const bare = mizanAdapter(env.client); // no runtime: the hub side alone
  const off2 = bare.registerContext('todos', {}, refetch);
  s.receive({ invalidate: ['todos'], versions: { todos: 'e:1' } });
  await settle();
  assert.equal(refetches, 2);
  off2();
});

test('tanstack adapter: track() calls invalidateQueries({queryKey}) while tracked, and only then', async () => {
  const env = setup();
  const s = welcome(env);
  const calls: unknown[] = [];
  const queryClient: QueryClientLike = { invalidateQueries: (filters) => calls.push(filters) };
  const adapter = tanstackAdapter(env.client, queryClient, { spread: false });
  const untrack = adapter.track('user', { user_id: 5 });
  const untrack2 = adapter.track('todos', {}, ['todos', 'list']);
  assert.equal(s.take('subscribe').length, 2);
  s.receive({ invalidate: ['user', 'todos'], versions: { user: 'e:1', todos: 'e:1' } });
  await settle();
  assert.deepEqual(calls, [{ queryKey: ['user', { user_id: 5 }] }, { queryKey: ['todos', 'list'] }]);
  untrack();
  untrack2();
  s.receive({ invalidate: ['user', 'todos'], versions: { user: 'e:2', todos: 'e:2' } });
  await settle();
  assert.equal(calls.length, 2);
  const custom = tanstackAdapter(env.client, queryClient, { queryKey: (c, p) => ['mizan', c, p] });
  custom.track('feed');
  s.receive({ invalidate: ['feed'], versions: { feed: 'e:1' } });
  await settle();
  assert.deepEqual(calls[2], { queryKey: ['mizan', 'feed', {}] });
});

test('tanstack adapter: watch() follows a real QueryClient: observed queries subscribe, refetch, unsubscribe', async () => {
  const env = setup();
  const s = welcome(env);
  const queryClient = new QueryClient();
  let fetches = 0;
  const stop = tanstackAdapter(env.client, queryClient, { spread: false }).watch((key) =>
    key[0] === 'ctx' && typeof key[1] === 'string' ? { context: key[1], params: key[2] as { [k: string]: string } } : null,
  );
  const observer = new QueryObserver(queryClient, {
    queryKey: ['ctx', 'user', { user_id: 5 }],
    queryFn: async () => ++fetches,
  });
  const other = new QueryObserver(queryClient, { queryKey: ['not-a-context'], queryFn: async () => 0 });
  const unobserve = observer.subscribe(() => {});
  const unobserveOther = other.subscribe(() => {});
  await tick();
  assert.equal(fetches, 1);
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'user', params: { user_id: '5' } }]);

  s.receive({ invalidate: [{ context: 'user', params: { user_id: 5 } }], versions: { user: 'e:1' } });
  await settle();
  await tick();
  assert.equal(fetches, 2, 'the invalidation refetched the mounted query');

  unobserve();
  unobserveOther();
  await tick();
  await settle();
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', context: 'user', params: { user_id: '5' } }]);
  s.receive({ invalidate: ['user'], versions: { user: 'e:2' } });
  await settle();
  await tick();
  assert.equal(fetches, 2, 'no observer, no refetch');

  const again = observer.subscribe(() => {});
  await tick();
  assert.equal(s.take('subscribe').length, 1, 'observed again: subscribed again');
  stop();
  await settle();
  assert.equal(s.take('unsubscribe').length, 1, 'stop() drops every subscription');
  again();
  queryClient.clear();
});

test('swr adapter: track() calls mutate(key) while tracked, and only then', async () => {
  const env = setup();
  const s = welcome(env);
  const keys: unknown[] = [];
  const mutate: SWRMutate = (key) => keys.push(key);
  const adapter = swrAdapter(env.client, mutate, { spread: false });
  const untrack = adapter.track('user', { user_id: 5 });
  const untrack2 = adapter.track('todos', {}, '/api/mizan/ctx/todos/');
  s.receive({ invalidate: ['user', 'todos'], versions: { user: 'e:1', todos: 'e:1' } });
  await settle();
  assert.deepEqual(keys, [['user', { user_id: 5 }], '/api/mizan/ctx/todos/']);
  untrack();
  untrack2();
  s.receive({ invalidate: ['user', 'todos'], versions: { user: 'e:2', todos: 'e:2' } });
  await settle();
  assert.equal(keys.length, 2);
  const byUrl = swrAdapter(env.client, mutate, { key: (c, p) => `/api/mizan/ctx/${c}/?${new URLSearchParams(p as never)}` });
  byUrl.track('user', { user_id: 7 });
  s.receive({ invalidate: ['user'], versions: { user: 'e:3' } });
  await settle();
  assert.equal(env.client.state, 'open');
  env.clock.advance(10_000); // the default spread (welcome spread_ms 0) is no wait
  assert.equal(keys[2], '/api/mizan/ctx/user/?user_id=7');
});
