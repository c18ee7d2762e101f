/**
 * Compile-time checks with the DOM's own types: the browser's `WebSocket`,
 * `window` and `document` fit the options `connect` takes. (The runtime
 * checks are in client.test.ts; this file only has to compile.)
 */

/// <reference lib="dom" />

import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { ConnectOptions, SocketConstructor } from '@mizan/hub-client';

export function browserOptions(): ConnectOptions {
  const ctor: SocketConstructor = WebSocket;
  return { url: 'wss://hub.example/ws', WebSocket: ctor, window, document };
}

test('types: the DOM WebSocket, window and document fit ConnectOptions', () => {
  assert.equal(typeof browserOptions, 'function');
});
