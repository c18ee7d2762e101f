/**
 * The client's transport choice (SPEC 6.1): `auto` falls back to
 * Server-Sent Events when a WebSocket cannot open, says so in `transport`,
 * stays there while the stream works and goes back when it cannot open
 * either; forced modes use only theirs. Fake sockets, a fake EventSource and
 * a fake fetch (the real hub's cases over SSE are in hub.test.ts).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect } from '@mizan/hub-client';
import type { EventSourceConstructor, FetchLike, HubClient, SocketConstructor, Transport } from '@mizan/hub-client';

import { waitFor } from './realhub.js';

const WELCOME = JSON.stringify({ welcome: { protocol: 1, hub: 'h', conn: 'h.1-1', identity: null, expires: null, spread_ms: 0, max_frame: 65536 } });

/** A WebSocket that never opens: what a proxy that breaks upgrades leaves. */
class BrokenWS {
  onopen: (() => void) | null = null;
  onmessage = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  constructor() {
    setTimeout(() => this.onclose?.({ code: 1006, reason: '' }), 1);
  }
  send(): void {}
  close(): void {}
}

/** An EventSource whose stream opens (stream + welcome events) unless `down`. */
function fakeES(log: string[], down: { v: boolean }): EventSourceConstructor {
  return class {
    onmessage: ((e: { data: string }) => void) | null = null;
    onerror: ((e: unknown) => void) | null = null;
    constructor(url: string) {
      log.push(url);
      setTimeout(() => {
        if (down.v) return this.onerror?.({});
        this.onmessage?.({ data: '{"stream":{"conn":"h.1-1","secret":"' + 's'.repeat(32) + '"}}' });
        this.onmessage?.({ data: WELCOME });
      }, 1);
    }
    close(): void {}
  } as unknown as EventSourceConstructor;
}

function client(extra: { transport?: 'auto' | Transport; WebSocket?: SocketConstructor }, es: EventSourceConstructor, posts: string[]): HubClient {
  const fetch: FetchLike = async (url, init) => {
    posts.push(`${url} ${init.body}`);
    return { status: 202 };
  };
  return connect({ url: 'ws://hub.test:8080/ws', EventSource: es, fetch, baseDelay: 1, maxDelay: 5, window: null, document: null, ...extra });
}

test('auto: a WebSocket that cannot open gives way to SSE, which then carries the frames', { timeout: 5000 }, async () => {
  const urls: string[] = [];
  const posts: string[] = [];
  const c = client({ WebSocket: BrokenWS as unknown as SocketConstructor }, fakeES(urls, { v: false }), posts);
  assert.equal(c.transport, 'websocket');
  await waitFor('open over sse', () => c.state === 'open', 3000);
  assert.equal(c.transport, 'sse');
  assert.deepEqual(urls, ['http://hub.test:8080/sse']);
  c.subscribe('todos', {}, () => {});
  await waitFor('a POST', () => posts.length);
  assert.match(posts[0] as string, /^http:\/\/hub\.test:8080\/sse\/h\.1-1\?secret=s{32}&n=1 \{"action":"subscribe","context":"todos"/);
  c.close();
});

test('auto: when the stream cannot open either, the next attempt is a WebSocket again', { timeout: 5000 }, async () => {
  const urls: string[] = [];
  let dials = 0;
  const Counting = class extends BrokenWS {
    constructor() {
      super();
      dials++;
    }
  };
  const c = client({ WebSocket: Counting as unknown as SocketConstructor }, fakeES(urls, { v: true }), []);
  await waitFor('two streams and three WebSockets tried', () => urls.length >= 2 && dials >= 3, 3000);
  assert.ok(Math.abs(dials - urls.length) <= 1, `alternating: ${dials} WebSockets, ${urls.length} streams`);
  c.close();
});

test('auto: after a stream that opened ends, the next attempt is a WebSocket again', { timeout: 5000 }, async () => {
  const urls: string[] = [];
  let dials = 0;
  const Counting = class extends BrokenWS {
    constructor() {
      super();
      dials++;
    }
  };
  const ES = fakeES(urls, { v: false });
  const c = client({ WebSocket: Counting as unknown as SocketConstructor }, ES, []);
  await waitFor('open over sse', () => c.state === 'open', 3000);
  assert.equal(dials, 1);
  c.reconnect(); // ends the open stream
  await waitFor('a WebSocket tried again', () => dials === 2, 3000);
  await waitFor('open over sse again', () => c.state === 'open' && urls.length === 2, 3000);
  assert.equal(c.transport, 'sse');
  c.close();
});

test('forced transports use only theirs', { timeout: 5000 }, async () => {
  const urls: string[] = [];
  const sse = client({ transport: 'sse', WebSocket: BrokenWS as unknown as SocketConstructor }, fakeES(urls, { v: false }), []);
  assert.equal(sse.transport, 'sse');
  await waitFor('open', () => sse.state === 'open', 3000);
  sse.close();
  let dials = 0;
  const Counting = class extends BrokenWS {
    constructor() {
      super();
      dials++;
    }
  };
  const ws = client({ transport: 'websocket', WebSocket: Counting as unknown as SocketConstructor }, fakeES(urls, { v: false }), []);
  await waitFor('3 WebSocket attempts', () => dials >= 3, 3000);
  assert.equal(ws.transport, 'websocket');
  assert.equal(urls.length, 1); // only the forced-sse client's stream
  ws.close();
});
