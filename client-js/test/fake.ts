/**
 * Test doubles for the runtime: a WebSocket class to inject, a manual clock
 * (setTimeout/clearTimeout/now), scripted random numbers, and an event
 * target for `window`/`document`. Every frame the client sends is checked
 * with the hub-side decoder (`decodeFrame`), so the wire format is SPEC
 * section 7's.
 */

import assert from 'node:assert/strict';

import { connect } from '@mizan/hub-client';
import type { ConnectOptions, HubClient, State } from '@mizan/hub-client';
import { decodeFrame } from '@mizan/hub-client/protocol';

export type Frame = { [key: string]: unknown };

export class FakeSocket {
  readonly sent: Frame[] = [];
  closed: { code: number; reason: string } | null = null;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {}

  send(data: string): void {
    assert.equal(this.closed, null, 'send on a closed socket');
    decodeFrame(data); // throws when the hub would refuse it
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(code = 1000, reason = ''): void {
    this.closed = { code, reason };
  }

  // ---- the hub's side ----

  open(): void {
    this.onopen?.(undefined);
  }

  receive(frame: Frame | string): void {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  /** The hub (or the network) closes the connection. */
  drop(code: number, reason = ''): void {
    this.onclose?.({ code, reason });
  }

  /** Frames sent so far with this action, and forgets all sent frames. */
  take(action?: string): Frame[] {
    const out = this.sent.filter((f) => action === undefined || f['action'] === action);
    this.sent.length = 0;
    return out;
  }
}

interface Timer {
  at: number;
  fn: () => void;
  ms: number;
}

/** A manual clock: timers run only in `advance`. `now()` is in ms. */
export class Clock {
  t = 1_764_000_000_000;
  private id = 0;
  readonly timers = new Map<number, Timer>();

  readonly setTimeout = (fn: () => void, ms: number): unknown => {
    this.timers.set(++this.id, { at: this.t + ms, fn, ms });
    return this.id;
  };

  readonly clearTimeout = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };

  readonly now = (): number => this.t;

  /** Delays (ms, as requested) of the timers still pending. */
  delays(): number[] {
    return [...this.timers.values()].map((t) => t.ms);
  }

  /** Runs the timers due within `ms`, in order, moving the clock. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, Timer] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

/** An event target standing in for `window` or `document`. */
export class FakeTarget {
  visibilityState = 'visible';
  private readonly listeners = new Map<string, Set<() => void>>();

  addEventListener(type: string, fn: () => void): void {
    const set = this.listeners.get(type) ?? new Set();
    this.listeners.set(type, set.add(fn));
  }

  removeEventListener(type: string, fn: () => void): void {
    this.listeners.get(type)?.delete(fn);
  }

  count(type: string): number {
    return this.listeners.get(type)?.size ?? 0;
  }

  dispatch(type: string): void {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn();
  }
}

/** Lets every pending microtask and promise callback run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface Env {
  client: HubClient;
  clock: Clock;
  sockets: FakeSocket[];
  /** the newest socket */
  sock(): FakeSocket;
  /** the values `random()` returns next (then 0.5) */
  randoms: number[];
  states: [State, number | null][];
  win: FakeTarget;
  doc: FakeTarget;
}

/** A client on fakes; `random` is 0.5 unless `randoms` has values queued. */
export function setup(extra: Partial<ConnectOptions> = {}): Env {
  const sockets: FakeSocket[] = [];
  class WS extends FakeSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  const clock = new Clock();
  const randoms: number[] = [];
  const win = new FakeTarget();
  const doc = new FakeTarget();
  const client = connect({
    url: 'ws://hub.test/ws',
    WebSocket: WS,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => randoms.shift() ?? 0.5,
    window: win,
    document: doc,
    ...extra,
  });
  const states: [State, number | null][] = [];
  client.onState((s, r) => states.push([s, r ? r.code : null]));
  return {
    client,
    clock,
    sockets,
    sock: () => {
      const s = sockets[sockets.length - 1];
      assert.ok(s, 'no socket was made');
      return s;
    },
    randoms,
    states,
    win,
    doc,
  };
}

export const WELCOME = {
  protocol: 1,
  hub: '3f9c0a1b2c4d',
  conn: '3f9c0a1b2c4d.17',
  identity: null,
  expires: null,
  spread_ms: 0,
  max_frame: 65536,
};

/** Opens the newest socket and sends the welcome frame. */
export function welcome(env: Env, extra: Frame = {}): FakeSocket {
  const s = env.sock();
  s.open();
  s.receive({ welcome: { ...WELCOME, ...extra } });
  return s;
}
