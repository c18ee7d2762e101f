/**
 * The React entry (`@mizan/hub-client/react`) rendered with
 * react-test-renderer: useInvalidation's counter, useChannel's messages and
 * send, subscriptions tied to mounting.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { StrictMode, createElement, useEffect } from 'react';
import type { ReactElement } from 'react';
import TestRenderer from 'react-test-renderer';
import type { ReactTestRenderer } from 'react-test-renderer';

import type { HubClient, InvalidationEvent } from '@mizan/hub-client';
import { HubProvider, useChannel, useHub, useHubState, useInvalidation, usePresence } from '@mizan/hub-client/react';
import type { HubState, UseChannel, UsePresence } from '@mizan/hub-client/react';

import useSWR, { SWRConfig, useSWRConfig } from 'swr';
import type { ScopedMutator } from 'swr';

import { swrAdapter } from '@mizan/hub-client/swr';

import { settle, setup, welcome } from './fake.js';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
const consoleError = console.error;
console.error = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes('react-test-renderer is deprecated')) return;
  consoleError(...args);
};

const { act, create } = TestRenderer;

async function render(client: HubClient, element: ReactElement): Promise<ReactTestRenderer> {
  let r: ReactTestRenderer | undefined;
  await act(async () => {
    r = create(createElement(HubProvider, { client }, element));
  });
  return r as ReactTestRenderer;
}

test('react: useInvalidation returns a counter that goes up on invalidation, while mounted', async () => {
  const env = setup();
  const s = welcome(env);
  const seen: number[] = [];
  const events: InvalidationEvent[] = [];
  let loads = 0;
  function Profile(props: { id: number }) {
    const v = useInvalidation('user', { user_id: props.id }, (e) => events.push(e));
    useEffect(() => {
      loads++; // what a component would do: refetch when v changes
    }, [v]);
    seen.push(v);
    return null;
  }
  const r = await render(env.client, createElement(Profile, { id: 5 }));
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'user', params: { user_id: '5' } }]);
  assert.equal(loads, 1);
  await act(async () => {
    s.receive({ invalidate: [{ context: 'user', params: { user_id: 5 } }], versions: { user: 'e:1' } });
    await settle();
  });
  assert.equal(seen.at(-1), 1);
  assert.equal(loads, 2);
  assert.equal(events.length, 1);

  await act(async () => r.update(createElement(HubProvider, { client: env.client }, createElement(Profile, { id: 5 }))));
  assert.deepEqual(s.take(), [], 'a re-render with equal params does not resubscribe');

  await act(async () => r.update(createElement(HubProvider, { client: env.client }, createElement(Profile, { id: 6 }))));
  await act(settle);
  assert.deepEqual(s.take(), [
    // a new key of a context with a known version resumes from it (README: "since")
    { action: 'subscribe', context: 'user', params: { user_id: '6' }, since: 'e:1' },
    { action: 'unsubscribe', context: 'user', params: { user_id: '5' } },
  ]);
  await act(async () => r.unmount());
  await act(settle);
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', context: 'user', params: { user_id: '6' } }]);
});

test('react: StrictMode double effects share one server subscription', async () => {
  const env = setup();
  const s = welcome(env);
  function A() {
    useInvalidation('todos');
    return null;
  }
  const r = await render(env.client, createElement(StrictMode, null, createElement(A), createElement(A)));
  await act(settle);
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'todos', params: {} }]);
  await act(async () => r.unmount());
  await act(settle);
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', context: 'todos', params: {} }]);
});

test('react: useChannel gives the latest message and gap, and send()', async () => {
  const env = setup();
  const s = welcome(env);
  let api: UseChannel | undefined;
  const all: unknown[] = [];
  function Chat(props: { room: string }) {
    api = useChannel('chat', { room: props.room }, (m) => all.push(m.data));
    return null;
  }
  const r = await render(env.client, createElement(Chat, { room: 'lobby' }));
  assert.deepEqual(s.take(), [{ action: 'subscribe', channel: 'chat', params: { room: 'lobby' } }]);
  assert.equal(api?.last, null);
  await act(async () => {
    s.receive({ channel: 'chat', params: { room: 'lobby' }, type: 'ChatMessage', data: { text: 'hi' }, seq: 1, epoch: 'e' });
    s.receive({ gap: { channel: 'chat', params: { room: 'lobby' }, from: 2, to: 3, recovered: false, reason: 'no_history' } });
  });
  assert.deepEqual(api?.last, { type: 'ChatMessage', data: { text: 'hi' }, seq: 1, epoch: 'e' });
  assert.equal(api?.gap?.reason, 'no_history');
  assert.deepEqual(all, [{ text: 'hi' }]);
  api?.send({ text: 'yo' });
  assert.deepEqual(s.take(), [{ action: 'message', channel: 'chat', params: { room: 'lobby' }, data: { text: 'yo' } }]);

  await act(async () => r.update(createElement(HubProvider, { client: env.client }, createElement(Chat, { room: 'b' }))));
  assert.equal(api?.last, null, "another instance: the old room's message is not shown");
  await act(async () => r.unmount());
  await act(settle);
  assert.deepEqual(s.take().map((f) => [f['action'], (f['params'] as { room: string }).room]), [
    ['subscribe', 'b'],
    ['unsubscribe', 'lobby'],
    ['unsubscribe', 'b'],
  ]);
});

test('react: the hooks need a HubProvider', async () => {
  function Lost() {
    useHub();
    return null;
  }
  const errors: unknown[] = [];
  console.error = () => {}; // React logs the error it rethrows
  try {
    await act(async () => {
      try {
        create(createElement(Lost));
      } catch (e) {
        errors.push(e);
      }
    });
  } catch (e) {
    errors.push(e);
  } finally {
    console.error = consoleError;
  }
  assert.match(String(errors[0]), /HubProvider/);
});

test('react: useHubState follows the connection state, reason and identity, re-rendering on each change', async () => {
  const env = setup();
  const seen: string[] = [];
  let latest: HubState | undefined;
  function Status() {
    latest = useHubState();
    seen.push(latest.state);
    return null;
  }
  const r = await render(env.client, createElement(Status));
  assert.equal(latest?.state, 'connecting');
  assert.equal(latest?.reason, null);
  let s: ReturnType<typeof welcome> | undefined;
  await act(async () => {
    s = welcome(env, { identity: { sub: '7', staff: false, super: false } });
  });
  assert.equal(latest?.state, 'open');
  assert.deepEqual(latest?.identity, { sub: '7', staff: false, super: false });
  await act(async () => s?.drop(4001, 'unauthorized'));
  assert.equal(latest?.state, 'closed');
  assert.deepEqual(latest?.reason, { code: 4001, reason: 'unauthorized' });
  const renders = seen.length;
  await act(async () => r.update(createElement(HubProvider, { client: env.client }, createElement(Status))));
  assert.equal(seen.length, renders + 1, 'a re-render without a change renders once (the snapshot is kept)');
  await act(async () => r.unmount());
  env.client.reconnect(); // no listener left: nothing re-renders after unmount
  assert.equal(seen.length, renders + 1);
});

test('react: the entry is marked "use client" (React Server Components, Next.js App Router)', () => {
  for (const file of ['../dist/react.js', '../dist/cjs/react.js']) {
    const code = readFileSync(new URL(file, import.meta.url), 'utf8');
    // The directive must be in the prologue: only directives ("use strict") before it.
    assert.match(code, /^(["']use strict["'];\s*)?["']use client["'];/, file);
  }
});

test('swr adapter: watch(scope) revalidates, through mutate(filter), the real useSWR keys inside the scope', async () => {
  const env = setup();
  const s = welcome(env);
  const fetches: string[] = [];
  const fetcher = (key: [string, Record<string, number>]) => {
    fetches.push(JSON.stringify(key));
    return Promise.resolve(fetches.length);
  };
  let mutate: ScopedMutator | undefined;
  function List(props: { list: number; page?: number }) {
    const params = props.page === undefined ? { list_id: props.list } : { list_id: props.list, page: props.page };
    useSWR(['todos', params], fetcher, { dedupingInterval: 0 });
    return null;
  }
  function Other() {
    useSWR('/api/profile/', () => (fetches.push('"/api/profile/"'), Promise.resolve(0)), { dedupingInterval: 0 });
    mutate = useSWRConfig().mutate;
    return null;
  }
  const r = await render(
    env.client,
    createElement(
      SWRConfig,
      { value: { provider: () => new Map(), revalidateOnFocus: false } },
      createElement(List, { list: 3 }),
      createElement(List, { list: 3, page: 2 }),
      createElement(List, { list: 4 }),
      createElement(Other),
    ),
  );
  await act(settle);
  assert.equal(fetches.length, 4, 'each hook fetched once on mount');
  fetches.length = 0;
  assert.ok(mutate);
  const adapter = swrAdapter(env.client, mutate, { spread: false });
  const off = adapter.watch('todos', { list_id: 3 });
  assert.deepEqual(s.take(), [{ action: 'subscribe', context: 'todos', params: { list_id: '3' } }]);
  await act(async () => {
    s.receive({ invalidate: [{ context: 'todos', params: { list_id: 3 } }], versions: { todos: 'e:1' } });
    await settle();
  });
  assert.deepEqual(fetches.sort(), ['["todos",{"list_id":3,"page":2}]', '["todos",{"list_id":3}]']);
  fetches.length = 0;
  await act(async () => {
    s.receive({ invalidate: ['todos'], versions: { todos: 'e:2' } });
    await settle();
  });
  assert.deepEqual(fetches.sort(), ['["todos",{"list_id":3,"page":2}]', '["todos",{"list_id":3}]'], 'an unscoped entry: the keys of the watched scope, not list 4 nor /api/profile/');
  fetches.length = 0;
  off();
  await act(settle);
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', context: 'todos', params: { list_id: '3' } }]);
  await act(async () => {
    s.receive({ invalidate: ['todos'], versions: { todos: 'e:3' } });
    await settle();
  });
  assert.deepEqual(fetches, [], 'after off() nothing revalidates');
  await act(async () => r.unmount());
});

test('swr adapter with versions: a real useSWR fetch notes X-Mizan-Version, track subscribes after it with that since, the ack revalidates nothing', async () => {
  const env = setup();
  const s = welcome(env);
  let mutate: ScopedMutator | undefined;
  const adapter = swrAdapter(env.client, (key) => mutate?.(key as [string, object]), { spread: false, versions: true });
  let fetches = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const fetcher = async (key: [string, { list_id: number }]) => {
    fetches++;
    await gate;
    // what a fetch of Django's context view answers (django/mizan_hub/versions.py)
    const response = new Response(JSON.stringify(fetches), { headers: { 'X-Mizan-Version': `todos;v=e:${4 + fetches}` } });
    adapter.note(key, response);
    return (await response.json()) as number;
  };
  function List() {
    useSWR(['todos', { list_id: 3 }], fetcher, { dedupingInterval: 0 });
    mutate = useSWRConfig().mutate;
    useEffect(() => adapter.track('todos', { list_id: 3 }), []);
    return null;
  }
  const r = await render(
    env.client,
    createElement(SWRConfig, { value: { provider: () => new Map(), revalidateOnFocus: false } }, createElement(List)),
  );
  await act(settle);
  assert.equal(fetches, 1);
  assert.deepEqual(s.take('subscribe'), [], 'mounted, fetching: not subscribed yet');
  await act(async () => {
    release();
    await settle();
  });
  assert.deepEqual(s.take('subscribe'), [{ action: 'subscribe', context: 'todos', params: { list_id: '3' }, since: 'e:5' }]);
  await act(async () => {
    s.receive({ subscribed: true, context: 'todos', params: { list_id: '3' }, version: 'e:5' });
    await settle();
  });
  assert.equal(fetches, 1, 'the first ack revalidated nothing');
  await act(async () => {
    s.receive({ invalidate: [{ context: 'todos', params: { list_id: 3 } }], versions: { todos: 'e:6' } });
    await settle();
  });
  assert.equal(fetches, 2, 'a live invalidation revalidates the hook');
  await act(async () => r.unmount());
  await act(settle);
  assert.deepEqual(s.take('unsubscribe'), [{ action: 'unsubscribe', context: 'todos', params: { list_id: '3' } }]);
});

test('react: usePresence asks once subscribed, applies joins and leaves (also those that overtake its answer), asks again on a new ack', async () => {
  const env = setup();
  const s = welcome(env);
  const seen: UsePresence[] = [];
  function Room() {
    seen.push(usePresence('room', { room: 'lobby' }));
    return null;
  }
  const room = { channel: 'room', params: { room: 'lobby' } };
  const me = { conn: 'h.0-1', sub: 'me' };
  const ada = { conn: 'h.0-2', sub: 'ada', info: { name: 'Ada' } };
  const bob = { conn: 'h.0-3', sub: 'bob' };
  const r = await render(env.client, createElement(Room));
  const sent = s.take();
  assert.deepEqual(sent[0], { action: 'subscribe', ...room });
  const ask = sent[1] as { action: string; ref: number };
  assert.equal(ask.action, 'presence');
  assert.deepEqual(seen.at(-1), { members: null, error: null });
  await act(async () => {
    s.receive({ join: { ...room, member: ada } }); // before the answer: kept for it
    s.receive({ presence: { ...room, members: [me] }, ref: ask.ref });
    await settle();
  });
  assert.deepEqual(seen.at(-1)?.members, [me, ada]);
  await act(async () => {
    s.receive({ join: { ...room, member: bob } });
    s.receive({ leave: { ...room, member: ada } });
    s.receive({ join: { channel: 'room', params: { room: 'other' }, member: ada } }); // another instance
    await settle();
  });
  assert.deepEqual(seen.at(-1)?.members, [me, bob]);
  // a list the hub pushes unasked (after its Redis link loss) replaces it
  await act(async () => {
    s.receive({ presence: { ...room, members: [me, ada] } });
    await settle();
  });
  assert.deepEqual(seen.at(-1)?.members, [me, ada]);
  // a new ack (after a reconnect): asked again, the answer replaces the list
  await act(async () => {
    s.receive({ subscribed: true, ...room, epoch: '0', seq: 0 });
    await settle();
  });
  const again = s.take().find((f) => f['action'] === 'presence') as { ref: number } | undefined;
  assert.ok(again, 'asked again after the ack');
  await act(async () => {
    s.receive({ presence: { ...room, members: [me] }, ref: again.ref });
    await settle();
  });
  assert.deepEqual(seen.at(-1)?.members, [me]);
  await act(async () => r.unmount());
  await act(settle);
  assert.deepEqual(s.take(), [{ action: 'unsubscribe', ...room }]);
});

test('react: usePresence reports a refusal other than forbidden', async () => {
  const env = setup();
  const s = welcome(env);
  const seen: UsePresence[] = [];
  function Chat() {
    seen.push(usePresence('chat', {}));
    return null;
  }
  const r = await render(env.client, createElement(Chat));
  const ask = s.take().find((f) => f['action'] === 'presence') as { ref: number };
  await act(async () => {
    s.receive({ error: { code: 'not_found', message: "channel 'chat' keeps no presence" }, ref: ask.ref, channel: 'chat', params: {} });
    await settle();
  });
  const last = seen.at(-1);
  assert.equal(last?.members, null);
  assert.equal((last?.error as { code?: string }).code, 'not_found');
  await act(async () => r.unmount());
});
