/**
 * Versions in context responses (SPEC 10.1): `versionFrom` reads
 * `X-Mizan-Version`; a subscription given the version its data was read at
 * subscribes with `since` and skips the refetch after its first ack; callers
 * sharing one subscription are refetched exactly when their own data may be
 * older than what the subscription has seen; the adapters pass the version.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { QueryClient, QueryObserver } from '@tanstack/query-core';

import type { InvalidationEvent } from '@mizan/hub-client';
import { mizanAdapter } from '@mizan/hub-client/mizan';
import { ProtocolError, VERSION_HEADER, versionFrom } from '@mizan/hub-client/protocol';
import { versionFrom as fromReact } from '@mizan/hub-client/react';
import { swrAdapter } from '@mizan/hub-client/swr';
import { tanstackAdapter } from '@mizan/hub-client/tanstack';

import { settle, setup, welcome } from './fake.js';
import type { Env } from './fake.js';

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

function listen(env: Env, context: string, params: { [k: string]: string | number }, since?: string) {
  const events: InvalidationEvent[] = [];
  const off = env.client.subscribe(context, params, (e) => events.push(e), since === undefined ? { spread: false } : { spread: false, since });
  return { events, off };
}

test('versionFrom: a header value, Headers, a Response, embedded data; none is {}', () => {
  assert.equal(VERSION_HEADER, 'X-Mizan-Version');
  assert.equal(fromReact, versionFrom, 'one function across entries');
  const value = 'todos;v=k2f9a00q1:42, r%C3%A9sum%C3%A9;v=0:0 ,user;v=k2f9b:9007199254740993';
  const want = { todos: 'k2f9a00q1:42', résumé: '0:0', user: 'k2f9b:9007199254740993' };
  assert.deepEqual({ ...versionFrom(value) }, want);
  const headers = new Headers({ 'x-mizan-version': value });
  assert.deepEqual({ ...versionFrom(headers) }, want);
  assert.deepEqual({ ...versionFrom(new Response('{}', { headers })) }, want);
  assert.deepEqual({ ...versionFrom({ mizan_version: value, todos: [] }) }, want);
  assert.deepEqual({ ...versionFrom(new Headers()) }, {});
  assert.deepEqual({ ...versionFrom({ todos: [] }) }, {});
  assert.deepEqual({ ...versionFrom('') }, {});
  // twice with different versions (headers joined by a proxy): unknown
  assert.deepEqual({ ...versionFrom('a;v=x:1, b;v=y:2, a;v=x:2, b;v=y:2') }, { a: '0:0', b: 'y:2' });
  // the Python emitter's spelling (django/tests/test_versions.py) reads the same
  assert.deepEqual({ ...versionFrom('todos;v=k2f9a00q1%3A42') }, { todos: 'k2f9a00q1:42' });
});

test('versionFrom: anything SPEC 10.1 does not allow is a ProtocolError bad_header', () => {
  for (const bad of ['todos', 'todos;', 'todos;v=1', 'todos;v=x:01', 'todos;v=X:1', 'todos;v=x:1;w=2', 'todos;n=x:1', 'todos;v=x:1 y', 'a b']) {
    assert.throws(
      () => versionFrom(bad),
      (e: unknown) => e instanceof ProtocolError && e.code === 'bad_header',
      bad,
    );
  }
  assert.throws(() => versionFrom({ mizan_version: 5 }), (e: unknown) => e instanceof ProtocolError && e.code === 'bad_header');
});

test('since from a response: the first subscribe carries it, the first ack refetches nothing; without it, once', async () => {
  const env = setup();
  const s = welcome(env);
  const known = listen(env, 'todos', {}, 'e:5');
  const plain = listen(env, 'feed', {});
  assert.deepEqual(s.take('subscribe'), [
    { action: 'subscribe', context: 'todos', params: {}, since: 'e:5' },
    { action: 'subscribe', context: 'feed', params: {} },
  ]);
  s.receive({ subscribed: true, context: 'todos', params: {}, version: 'e:5' });
  s.receive({ subscribed: true, context: 'feed', params: {}, version: 'f:1' });
  await settle();
  assert.equal(known.events.length, 0, 'nothing changed after its version: no refetch');
  assert.deepEqual(plain.events.map((e) => e.reason), ['ack']);
});

test('since: a healing invalidation before the first ack is the only refetch', async () => {
  const env = setup();
  const s = welcome(env);
  const plain = listen(env, 'feed', {});
  s.receive({ invalidate: [{ context: 'feed', params: {} }], reason: 'resume', versions: { feed: 'f:2' } });
  await settle();
  s.receive({ subscribed: true, context: 'feed', params: {}, version: 'f:2' });
  await settle();
  assert.deepEqual(plain.events.map((e) => e.reason), ['resume']);
});

test('since: callers sharing a pending subscription are refetched at its ack only when older than its since', async () => {
  const env = setup();
  const s = welcome(env);
  const a = listen(env, 'user', { user_id: 5 }, 'e:5');
  const older = listen(env, 'user', { user_id: 5 }, 'e:3');
  const newer = listen(env, 'user', { user_id: 5 }, 'e:7');
  const other = listen(env, 'user', { user_id: 5 }, 'x:9');
  const none = listen(env, 'user', { user_id: 5 });
  assert.deepEqual(s.take('subscribe'), [{ action: 'subscribe', context: 'user', params: { user_id: '5' }, since: 'e:5' }]);
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'e:8' });
  await settle();
  assert.equal(a.events.length, 0);
  assert.equal(newer.events.length, 0);
  assert.deepEqual(older.events.map((e) => e.reason), ['ack'], 'e:3 < since e:5: events 4..5 may be missing from its data');
  assert.equal(other.events.length, 1, 'another epoch: unknown, refetched');
  assert.equal(none.events.length, 1, 'no version: refetched after the first ack');
});

test('since: a caller joining an acked subscription is refetched once when its version is older than the resume point', async () => {
  const env = setup();
  const s = welcome(env);
  const a = listen(env, 'user', { user_id: 5 }, 'e:5');
  assert.equal(s.take('subscribe').length, 1);
  s.receive({ subscribed: true, context: 'user', params: { user_id: '5' }, version: 'e:5' });
  s.receive({ invalidate: [{ context: 'user', params: { user_id: '5' } }], versions: { user: 'e:6' } });
  await settle();
  assert.equal(a.events.length, 1);
  const behind = listen(env, 'user', { user_id: 5 }, 'e:5');
  const level = listen(env, 'user', { user_id: 5 }, 'e:6');
  const ahead = listen(env, 'user', { user_id: 5 }, 'e:60');
  const joined = listen(env, 'user', { user_id: 5 }); // fetches after joining, as before
  await settle();
  assert.deepEqual(behind.events.map((e) => e.reason), ['ack'], 'the e:6 event reached the subscription before this caller');
  assert.equal(level.events.length + ahead.events.length + joined.events.length, 0);
  assert.equal(a.events.length, 1, 'the other callers are not refetched');
  assert.deepEqual(s.take('subscribe'), [], 'one server subscription');
});

test('adapters pass since: swr track/watch, mizan registerContext, tanstack track', () => {
  const env = setup();
  const s = welcome(env);
  const swr = swrAdapter(env.client, () => undefined);
  swr.track('a', {}, 'a', 'e:1');
  swr.watch('b', { x: 1 }, 'e:2');
  mizanAdapter(env.client).registerContext('c', {}, () => undefined, 'e:3');
  tanstackAdapter(env.client, { invalidateQueries: () => undefined }).track('d', {}, ['d'], 'e:4');
  swr.track('e');
  assert.deepEqual(
    s.take('subscribe').map((f) => [f['context'], f['since']]),
    [
      ['a', 'e:1'],
      ['b', 'e:2'],
      ['c', 'e:3'],
      ['d', 'e:4'],
      ['e', undefined],
    ],
  );
});

test('swr track with versions: subscribes once note() recorded its key, with since from the response', async () => {
  const env = setup();
  const s = welcome(env);
  const mutated: unknown[] = [];
  const swr = swrAdapter(env.client, (key) => void mutated.push(key), { spread: false, versions: true });
  const res = (value: string | null) => new Response('[]', value === null ? {} : { headers: { 'X-Mizan-Version': value } });

  // tracked before its data: nothing is sent until the fetcher notes it
  const off = swr.track('todos', { list_id: 3 });
  await settle();
  assert.deepEqual(s.take('subscribe'), [], 'no data yet, no subscribe');
  swr.note(['other', {}], res('todos;v=e:1'));
  await settle();
  assert.deepEqual(s.take('subscribe'), [], "another key's note does not release it");
  swr.note(['todos', { list_id: 3 }], res('todos;v=e:7, user;v=f:2'));
  await settle();
  assert.deepEqual(s.take('subscribe'), [{ action: 'subscribe', context: 'todos', params: { list_id: '3' }, since: 'e:7' }]);
  s.receive({ subscribed: true, context: 'todos', params: { list_id: '3' }, version: 'e:7' });
  await settle();
  assert.deepEqual(mutated, [], 'the first ack does not revalidate: the data is as new as the subscription');
  s.receive({ invalidate: [{ context: 'todos', params: { list_id: 3 } }], versions: { todos: 'e:8' } });
  await settle();
  assert.deepEqual(mutated, [['todos', { list_id: 3 }]], 'a live invalidation revalidates the key');
  off();
  await settle();
  assert.equal(s.take('unsubscribe').length, 1);

  // data noted before the track (key objects compared by value): subscribes at once
  swr.note(['feed', { b: 2, a: 1 }], res('feed;v=g:4'));
  const offFeed = swr.track('feed', { a: 1, b: 2 });
  assert.deepEqual(s.take('subscribe').map((f) => [f['context'], f['since']]), [['feed', 'g:4']]);
  offFeed();

  // an answer without versions (or a malformed one, which also fails the fetch): since 0:0
  const offBare = swr.track('bare');
  const offBad = swr.track('bad');
  swr.note(['bare', {}], res(null));
  assert.throws(() => swr.note(['bad', {}], res('bad;v=1')), (e: unknown) => e instanceof ProtocolError && e.code === 'bad_header');
  assert.deepEqual(s.take('subscribe').map((f) => [f['context'], f['since']]), [['bare', '0:0'], ['bad', '0:0']]);
  offBare();
  offBad();

  // given up before its data: never subscribes; an explicit since does not wait
  const offGone = swr.track('gone');
  offGone();
  swr.note(['gone', {}], res('gone;v=e:1'));
  swr.track('given', {}, 'my-key', 'e:5');
  await settle();
  assert.deepEqual(s.take('subscribe').map((f) => [f['context'], f['since']]), [['given', 'e:5']]);
});

test('tanstack watch with versions: subscribes once the data is there, with the version its query function noted', async () => {
  const env = setup();
  const s = welcome(env);
  const queryClient = new QueryClient();
  const hub = tanstackAdapter(env.client, queryClient, { spread: false, versions: true });
  const stop = hub.watch((key) => (typeof key[0] === 'string' ? { context: key[0], params: key[1] as { [k: string]: string } } : null));
  let fetches = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const observer = new QueryObserver(queryClient, {
    queryKey: ['todos', { list: 1 }],
    queryFn: async ({ queryKey }) => {
      fetches++;
      await gate;
      hub.note(queryKey, new Response('[]', { headers: { 'X-Mizan-Version': `todos;v=e:${10 + fetches}` } }));
      return fetches;
    },
  });
  const bare = new QueryObserver(queryClient, { queryKey: ['feed', {}], queryFn: async () => 0 });
  const off = observer.subscribe(() => {});
  const offBare = bare.subscribe(() => {});
  await tick();
  assert.deepEqual(
    s.take('subscribe').map((f) => [f['context'], f['since']]),
    [['feed', '0:0']],
    'a query still fetching is not subscribed; one whose function noted nothing uses 0:0',
  );
  release();
  await tick();
  assert.deepEqual(s.take('subscribe'), [{ action: 'subscribe', context: 'todos', params: { list: '1' }, since: 'e:11' }]);
  s.receive({ subscribed: true, context: 'todos', params: { list: '1' }, version: 'e:11' });
  await settle();
  await tick();
  assert.equal(fetches, 1, 'the first ack did not refetch');
  s.receive({ invalidate: [{ context: 'todos', params: { list: 1 } }], versions: { todos: 'e:12' } });
  await settle();
  await tick();
  assert.equal(fetches, 2, 'a live invalidation refetches');
  off();
  offBare();
  stop();
  queryClient.clear();
});
