/**
 * The browser runtime (SPEC sections 6-10): one WebSocket to a hub, cookie
 * or token authentication, context subscriptions with version tracking and
 * resume, channels with sequence dedup and gap reports, rpc, and reconnect
 * with full-jitter backoff.
 *
 * Written as one closure rather than a class: locals minify, properties do
 * not, and the core entry must stay under 6 KiB min+gz.
 */

import { ProtocolError } from './errors.js';
import { invalidationsFrom } from './from.js';
import type { InvalidationSource } from './from.js';
import { normalizeScopeAt } from './invalidation.js';
import type { Entry } from './invalidation.js';
import type { PresenceMember } from './envelope.js';
import { keyOf } from './key.js';
import type { SocketConstructor, SocketLike } from './socket.js';
import { sseSocket } from './sse.js';
import type { EventSourceConstructor, FetchLike } from './sse.js';
import type { Params, ParamsInput } from './values.js';

/** Connection states. `open` means welcomed (and, with a token, authenticated). */
export type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why the last connection ended: the WebSocket close code and reason text. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** Who the hub thinks the connection is (SPEC section 8). */
export interface Identity {
  sub: string;
  staff: boolean;
  super: boolean;
}

/** The hub's first frame (SPEC section 8). */
export interface Welcome {
  protocol: number;
  hub: string;
  conn: string;
  identity: Identity | null;
  /** Unix time (seconds) the credentials end, or null */
  expires: number | null;
  /** default refetch spread window, ms */
  spread_ms: number;
  max_frame: number;
}

/** What a context subscription's callback receives: one call per key per microtask batch. */
export interface InvalidationEvent {
  context: string;
  /** the subscription's params, normalized (string values) */
  params: Params;
  /** the subscription's canonical key */
  key: string;
  /** the entries of the batch that matched this subscription */
  entries: Entry[];
  /** `"gap"` or `"resume"` when the hub healed a gap (last one of the batch), else undefined */
  reason: string | undefined;
  /** ms waited before this call: uniformly random in [0, spread_ms), 0 without spread */
  delay: number;
}

export type InvalidationListener = (event: InvalidationEvent) => void;

export interface SubscribeOptions {
  /** wait a random delay within the hub's `spread_ms` before calling back (default true) */
  spread?: boolean;
  /**
   * the version the caller's data was read at (`versionFrom` of its response,
   * SPEC 10.1): the first subscribe carries it as `since` and the first ack
   * refetches nothing; a subscription already held (same key) past it calls
   * this listener once
   */
  since?: string;
}

/** A channel message (SPEC section 8). `seq`/`epoch` are absent on frames a worker sent directly. */
export interface ChannelMessage {
  type: string;
  data: unknown;
  seq?: number;
  epoch?: string;
  ts?: number;
}

/** Missed channel messages the hub could not replay (SPEC section 8). */
export interface Gap {
  from: number;
  to: number;
  recovered: boolean;
  /** `history_trimmed`, `no_history`, `epoch_changed` or `hub_link_lost` */
  reason: string;
}

/** One handle on a channel instance; several handles on one key share one server subscription. */
export interface Channel {
  readonly name: string;
  readonly params: Params;
  readonly key: string;
  /** Sends `{"action":"message",...}`; queued while the connection is down. */
  send(data?: unknown): void;
  /** Listens for messages; returns the function that stops listening. */
  on(listener: (message: ChannelMessage) => void): () => void;
  /** Listens for gap reports; returns the function that stops listening. */
  onGap(listener: (gap: Gap) => void): () => void;
  /**
   * Who subscribes to this instance, across every hub (SPEC 11.2), for a
   * channel whose registry entry says `presence: true`. Only a subscriber
   * may ask: call it once the subscription is acked (after a first message
   * or `onJoin`, or simply retry). Rejects with an `RpcError` whose code is
   * the hub's: `forbidden` (not subscribed), `not_found` (no presence),
   * `unauthorized`, `unavailable`; `TIMEOUT`/`DISCONNECTED` as for `rpc`.
   */
  presence(options?: CallOptions): Promise<PresenceMember[]>;
  /** Listens for members joining (another connection subscribed); returns the function that stops listening. */
  onJoin(listener: (member: PresenceMember) => void): () => void;
  /** Listens for members leaving (unsubscribed, disconnected, or their hub died); returns the function that stops listening. */
  onLeave(listener: (member: PresenceMember) => void): () => void;
  /**
   * Listens for whole member lists the hub pushes unasked: after its Redis
   * link was lost, joins and leaves of the gap are not replayed, so the list
   * replaces what the listener had. Returns the function that stops listening.
   */
  onMembers(listener: (members: PresenceMember[]) => void): () => void;
  /** Drops this handle (and its listeners); the last one unsubscribes. */
  close(): void;
}

/**
 * The codes an `RpcError` carries. Django's server functions' codes
 * (upper case) pass through as sent, so the list is open: the named ones
 * complete in editors and narrow in `switch`, any other string still fits.
 */
export type RpcErrorCode =
  // Django's server function (Mizan's codes; the worker's NOT_FOUND, FORBIDDEN, BAD_REQUEST, INTERNAL)
  | 'BAD_REQUEST'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'UNAUTHORIZED'
  | 'VALIDATION_ERROR'
  | 'INTERNAL'
  // the hub: no reply within its rpc timeout; Redis unreachable, or over the connection's
  // inbound budget (neither queued the call)
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'RATE_LIMITED'
  // the client: the connection dropped after the call was sent, or close(); the caller's AbortSignal
  | 'DISCONNECTED'
  | 'ABORTED'
  // the hub refused the frame itself (SPEC section 9)
  | 'rate_limited'
  | 'too_large'
  | 'bad_frame'
  | 'unauthorized'
  | 'forbidden'
  | 'unavailable'
  | (string & {});

/** An rpc/ctx failure: `code` is SPEC section 8's upper-case code, the hub's lower-case one, or the client's `TIMEOUT` / `DISCONNECTED` / `ABORTED`. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly code: RpcErrorCode;
  readonly details: unknown;

  constructor(code: RpcErrorCode, message: string, details?: unknown) {
    super(`${code}: ${message}`);
    this.code = code;
    this.details = details;
  }
}

/** The part of the DOM's `AbortSignal` that `rpc`/`ctx` use. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface CallOptions {
  /** ms before the promise rejects with `TIMEOUT` (default: the client's `rpcTimeout`) */
  timeout?: number;
  /**
   * Rejects the call with `ABORTED` (the signal's `reason` in `details`) when
   * it aborts. A call still queued is never sent; one already sent may still
   * run on the server, and its reply is ignored.
   */
  signal?: AbortSignalLike;
}

/** An error frame (SPEC section 8), as received; Mizan's own channel consumer sends `error` as a bare string. */
export interface HubError {
  error: { code: string; message: string } | string;
  /** the hub ended this subscription (after an identity change took the right away, SPEC 8) */
  unsubscribed?: boolean;
  ref?: string | number;
  context?: string;
  channel?: string;
  params?: Params;
}

interface EventSourceLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

interface DocumentLike extends EventSourceLike {
  readonly visibilityState: string;
}

export interface ConnectOptions {
  /** `ws://` or `wss://` URL of the hub (any path but /healthz, /readyz, /metrics) */
  url: string;
  /** Token auth: called before every connection and refresh; without it the browser's cookies authenticate. */
  token?: () => Promise<string>;
  /** WebSocket subprotocols; default none (a server that answers none would fail a requested one) */
  protocols?: string | string[];
  /** first backoff ceiling, ms (default 500); attempt n waits random() × min(maxDelay, baseDelay × 2^n) */
  baseDelay?: number;
  /** backoff cap, ms (default 30000) */
  maxDelay?: number;
  /** after close 1012 (drain), reconnect after random() × drainDelay ms (default 5000) */
  drainDelay?: number;
  /** a connection open this long (ms, default 5000) resets the backoff */
  stableAfter?: number;
  /**
   * after a subscription's first ack, call its listeners once (reason "ack"),
   * since data fetched before the ack may predate it (SPEC section 10);
   * default true. Not for callers that gave `since`: those are refetched only
   * when their version is older than what the subscription has seen (SPEC 10.1).
   */
  refetchOnAck?: boolean;
  /** refresh the token this many seconds before `expires` (default 60); the hub's `expiring` also triggers it */
  refreshBefore?: number;
  /** default rpc/ctx timeout, ms (default 35000: after the hub's own 30 s TIMEOUT) */
  rpcTimeout?: number;
  /**
   * `auto` (default): a WebSocket, and Server-Sent Events (SPEC 6.1) when one
   * cannot open (a proxy that breaks upgrades): each connection that fails
   * before it opens makes the next attempt use the other one; after a
   * connection that opened ends, the next attempt is a WebSocket again.
   * `websocket` or `sse` use only that one.
   * `transport` on the client says which one is in use.
   */
  transport?: 'auto' | Transport;
  /** injectable for tests and other environments */
  WebSocket?: SocketConstructor;
  /** the stream of the SSE transport; default the global `EventSource` */
  EventSource?: EventSourceConstructor;
  /** the POSTs of the SSE transport; default the global `fetch` */
  fetch?: FetchLike;
  random?: () => number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** where `online` is listened for; default `window` when there is one */
  window?: EventSourceLike | null;
  /** where `visibilitychange` is listened for; default `document` when there is one */
  document?: DocumentLike | null;
}

/** What carries a connection: a WebSocket, or Server-Sent Events + POSTs (SPEC 6.1). */
export type Transport = 'websocket' | 'sse';

export interface HubClient {
  readonly state: State;
  /** what the current (or next) connection uses; `sse` after a fallback (`connect({transport})`) */
  readonly transport: Transport;
  /** why the last connection ended (null while the first one is being made) */
  readonly reason: CloseInfo | null;
  readonly welcome: Welcome | null;
  readonly identity: Identity | null;
  /** Calls `listener(state, reason)` on every change; returns the function that stops it. */
  onState(listener: (state: State, reason: CloseInfo | null) => void): () => void;
  /** Error frames from the hub. */
  onError(listener: (error: HubError) => void): () => void;
  /** Every frame from the hub, parsed, before the client handles it. */
  onFrame(listener: (frame: Record<string, unknown>) => void): () => void;
  /**
   * Subscribes to a context scope; several subscriptions of one canonical key
   * share one server subscription. Throws a `ProtocolError` for a bad name or
   * params. Returns the unsubscribe function (idempotent).
   */
  subscribe(context: string, params: ParamsInput | undefined, onInvalidate: InvalidationListener, options?: SubscribeOptions): () => void;
  /** Delivers invalidations from a mutation response (body, `Headers` or header value) to the local subscriptions, without spread. */
  invalidate(source: InvalidationSource): void;
  /** The largest version seen for a context (its resume point), or undefined. */
  version(context: string): string | undefined;
  channel(name: string, params?: ParamsInput): Channel;
  /**
   * Calls a server function; resolves its `data` (typed by the caller:
   * `rpc<Todo>('todos.add', …)`, unchecked at run time), rejects with an
   * `RpcError` whose `code` is an `RpcErrorCode`.
   */
  rpc<T = unknown>(fn: string, args?: unknown, options?: CallOptions): Promise<T>;
  /** Fetches a context through the hub (`ctx` action). */
  ctx<T = unknown>(context: string, params?: ParamsInput, options?: CallOptions): Promise<T>;
  /** Reconnects now: after a fatal close (new credentials), after `close()`, or to skip a backoff wait. */
  reconnect(): void;
  /** Closes for good (until `reconnect()`): no retry; pending calls reject with `DISCONNECTED`. */
  close(): void;
}

interface Listener {
  f: InvalidationListener;
  s: boolean;
  /** the caller's `since` */
  v?: string | undefined;
  /** called by a healing invalidation before the first ack: no ack refetch needed */
  h?: boolean;
  /** the delayed call not made yet (spread), to which later batches add entries */
  p?: InvalidationEvent | undefined;
  t?: unknown;
}

interface Sub {
  c: string;
  p: Params;
  k: string;
  ls: Set<Listener>;
  /** the caller's `since`, for the first subscribe */
  since: string | undefined;
  /** the `since` the last subscribe before the first ack carried ('' for none) */
  w?: string;
  /** acknowledged at least once */
  a: boolean;
  /** the version of its last ack */
  v?: string | undefined;
  /** created while the connection was down after having been up: heal with "0:0" when no version is known */
  o: boolean;
  /** ended by the hub (its identity lost the right, SPEC 8): not sent again until subscribed anew */
  x?: boolean;
}

interface Chan {
  n: string;
  p: Params;
  k: string;
  refs: number;
  m: Set<(m: ChannelMessage) => void>;
  g: Set<(g: Gap) => void>;
  /** join and leave listeners */
  j: Set<(m: PresenceMember) => void>;
  l: Set<(m: PresenceMember) => void>;
  /** member list listeners */
  s: Set<(m: PresenceMember[]) => void>;
  e?: string;
  q?: number;
  /** ended by the hub, as Sub.x */
  x?: boolean;
}

interface Call {
  ok: (v: unknown) => void;
  no: (e: RpcError) => void;
  t: unknown;
  /** stops listening to the caller's AbortSignal */
  u: (() => void) | undefined;
  /** the frame, while it waits in the outbox */
  f: Out | undefined;
}

type Out = { [k: string]: unknown };

/** What the hub sends; every member optional, checked where used. */
interface In {
  welcome?: Welcome;
  authed?: { identity: Identity | null; expires: number | null };
  expiring?: unknown;
  subscribed?: boolean;
  context?: string;
  channel?: string;
  params?: ParamsInput;
  version?: string;
  epoch?: string;
  seq?: number;
  invalidate?: unknown;
  versions?: { [context: string]: unknown };
  spread_ms?: number;
  reason?: string;
  type?: string;
  data?: unknown;
  ts?: number;
  gap?: Gap & { channel: string; params?: ParamsInput };
  id?: string | number;
  ok?: boolean;
  error?: { code?: string; message?: string; details?: unknown };
  ref?: string | number;
  unsubscribed?: boolean;
  presence?: { channel: string; params?: ParamsInput; members?: PresenceMember[] };
  join?: PresenceEvent;
  leave?: PresenceEvent;
}

interface PresenceEvent {
  channel: string;
  params?: ParamsInput;
  member: PresenceMember;
}

/** Close codes after which only new credentials help (SPEC section 9). */
const FATAL = [4001, 4003, 4005];

/** Whether version `b` is not newer than `a` in the same epoch (counters compared as decimal strings, which may pass 2^53). */
function notNewer(a: string, b: string): boolean {
  const i = a.indexOf(':');
  const j = b.indexOf(':');
  if (a.slice(0, i) !== b.slice(0, j)) return false;
  const x = a.slice(i + 1);
  const y = b.slice(j + 1);
  return y.length < x.length || (y.length === x.length && y <= x);
}

function scope(name: string, params: ParamsInput | undefined): [Params, string] {
  const s = normalizeScopeAt({ context: name, params: params ?? {} }, '');
  return [s.params, keyOf(name, s.params)];
}

/** Calls every listener in `set` (a copy: listeners may come and go meanwhile). */
function emit<A extends unknown[]>(set: Set<(...args: A) => void>, ...args: A): void {
  for (const l of [...set]) l(...args);
}

function addTo<T>(set: Set<T>, item: T): () => void {
  set.add(item);
  return () => void set.delete(item);
}

/**
 * Opens a connection to the hub and keeps it open: reconnects with backoff,
 * re-authenticates, resubscribes and heals gaps (SPEC section 10) until
 * `close()` or a close code that needs new credentials (4001, 4003, 4005).
 * Throws at once when there is no `WebSocket` (neither `options.WebSocket`
 * nor a global one).
 */
export function connect(options: ConnectOptions): HubClient {
  const o = options;
  const G = globalThis as { WebSocket?: SocketConstructor; EventSource?: EventSourceConstructor; fetch?: FetchLike };
  const want = o.transport ?? 'auto';
  const WS = want === 'sse' ? undefined : (o.WebSocket ?? G.WebSocket);
  const ES = want === 'websocket' ? undefined : (o.EventSource ?? G.EventSource);
  const post = o.fetch ?? (G.fetch ? G.fetch.bind(globalThis) : undefined);
  const SSE = ES && post ? sseSocket(ES, post) : undefined;
  // Without one (server-side rendering, Node before 22) every attempt would fail and retry forever.
  if (!WS && !SSE) throw new Error('mizan-hub: no WebSocket (SSR, Node<22): pass connect({WebSocket})');
  /** the transport of the next dial; flipped (auto) when one fails before it opens */
  let transport: Transport = WS ? 'websocket' : 'sse';
  let sockOpened = false;
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const setT = o.setTimeout ?? ((fn: () => void, ms: number): unknown => setTimeout(fn, ms));
  const clearT = o.clearTimeout ?? ((h: unknown) => clearTimeout(h as ReturnType<typeof setTimeout>));
  const tokenFn = o.token;
  const base = o.baseDelay ?? 500;
  const cap = o.maxDelay ?? 3e4;
  // Absent where there is no DOM (workers, Node): then nothing is listened for.
  const g = globalThis as { window?: EventSourceLike; document?: DocumentLike };
  const win = 'window' in o ? o.window : g.window;
  const doc = 'document' in o ? o.document : g.document;

  let state: State = 'connecting';
  let reason: CloseInfo | null = null;
  let welcome: Welcome | null = null;
  let identity: Identity | null = null;
  let sock: SocketLike | undefined;
  /** welcomed (and authenticated): frames may be sent */
  let ready = false;
  let everReady = false;
  let stopped = false;
  /** bumped by every dial and loss, so late token promises and sockets are ignored */
  let gen = 0;
  let tries = 0;
  let retryT: unknown;
  let stableT: unknown;
  let refreshT: unknown;
  let lastExpires: number | null = null;
  let refreshing = false;
  let spreadDefault = 0;
  let flushing = false;
  let rid = 0;

  const stateLs = new Set<(s: State, r: CloseInfo | null) => void>();
  const errorLs = new Set<(e: HubError) => void>();
  const frameLs = new Set<(f: Record<string, unknown>) => void>();
  const subs = new Map<string, Sub>();
  const byContext = new Map<string, Set<Sub>>();
  const chans = new Map<string, Chan>();
  /** per context, the largest version seen anywhere (acks, frames): the resume point of new subscriptions */
  const versions = new Map<string, string>();
  /** per context, the largest version of in-order stream frames (no ack, no `reason`): see sendSub */
  const streamed = new Map<string, string>();
  const calls = new Map<number, Call>();
  let outbox: Out[] = [];
  /** per subscription: entries, spread, reason, and the only listeners to call (undefined: all) */
  let batch = new Map<Sub, { e: Entry[]; s: number; r: string | undefined; l?: Set<Listener> | undefined }>();

  const setState = (s: State, r: CloseInfo | null): void => {
    state = s;
    reason = r;
    emit(stateLs, s, r);
  };

  const raw = (f: Out): void => sock?.send(JSON.stringify(f));

  /** Sends now when ready, else queues (messages, rpc); subscriptions are replayed on open instead. */
  const out = (f: Out): void => {
    if (ready) raw(f);
    else outbox.push(f);
  };

  /** Keeps `v` for `c` in `map` unless the map has a newer version of the same epoch. */
  const noteVersion = (c: string, v: unknown, map = versions): void => {
    if (typeof v !== 'string') return;
    const old = map.get(c);
    if (old === undefined || !notNewer(old, v)) map.set(c, v);
  };

  /**
   * `since` (SPEC section 10). An acked subscription resumes from its own
   * ack or the newest in-order invalidate frame of its context, whichever is
   * newer; never from another subscription's ack, whose version is read from
   * Redis and may be ahead of events still on their way to this one. A new
   * subscription may use the context's newest version of any source: every
   * event up to it happened before the caller fetched its data.
   */
  const point = (s: Sub): string | undefined => {
    const f = streamed.get(s.c);
    return s.v && f && notNewer(s.v, f) ? s.v : f || s.v;
  };

  const sendSub = (s: Sub): void => {
    const since = (s.a ? point(s) : (s.w = s.since || versions.get(s.c) || '')) || (s.o ? (s.w = '0:0') : '');
    const out: Out = { action: 'subscribe', context: s.c, params: s.p };
    if (since) out['since'] = since;
    raw(out);
  };

  const sendChan = (c: Chan): void => {
    const f: Out = { action: 'subscribe', channel: c.n, params: c.p };
    if (c.e !== undefined) f['since'] = c.e + ':' + c.q;
    raw(f);
  };

  /**
   * At the end of the microtask, unless someone took the key again (React
   * StrictMode unmounts and remounts in one go): `remove` says whether it
   * removed the entry, and only then is the unsubscribe frame sent.
   */
  const release = (remove: () => boolean, f: Out): void =>
    queueMicrotask(() => {
      if (remove() && ready) raw(f);
    });

  // ---- invalidations ----

  const call = (l: Listener, ev: InvalidationEvent): void => {
    try {
      l.f(ev);
    } catch (e) {
      void Promise.reject(e); // reported, without breaking the other listeners
    }
  };

  /** Batches entry `e` for `s`'s listeners, or for `only` (added to those already asked for). */
  const add = (s: Sub, e: Entry, spread: number, why: string | undefined, only?: Listener): void => {
    let x = batch.get(s);
    if (!x) batch.set(s, (x = { e: [], s: 0, r: undefined, l: only && new Set() }));
    if (only) x.l?.add(only);
    else x.l = undefined;
    x.e.push(e);
    if (spread > x.s) x.s = spread;
    if (why) x.r = why;
    if (!flushing) {
      flushing = true;
      queueMicrotask(flush);
    }
  };

  /** One refetch of one listener whose data may predate what its subscription has seen (SPEC 10, 10.1). */
  const once = (s: Sub, l: Listener): void => add(s, { context: s.c, params: s.p }, 0, 'ack', l);

  const flush = (): void => {
    flushing = false;
    const b = batch;
    batch = new Map();
    for (const [s, x] of b) {
      for (const l of [...s.ls]) {
        if (x.l && !x.l.has(l)) continue;
        // A delayed call still waiting takes these entries too; an event
        // without spread (a local mutation's response) calls it now.
        const ev = l.p ?? {
          context: s.c,
          params: s.p,
          key: s.k,
          entries: [],
          reason: undefined,
          delay: l.s && x.s > 0 ? random() * x.s : 0,
        };
        ev.entries.push(...x.e);
        if (x.r) ev.reason = x.r;
        if (ev.delay > 0 && x.s > 0) {
          if (!l.p) {
            l.p = ev;
            l.t = setT(() => {
              l.p = undefined;
              call(l, ev);
            }, ev.delay);
          }
        } else {
          clearT(l.t);
          l.p = undefined;
          call(l, ev);
        }
      }
    }
  };

  /** Matches a normalized list against the subscriptions (SPEC section 4) and batches the hits. */
  const deliver = (list: Entry[], spread: number, why: string | undefined): void => {
    for (const e of list) {
      const scoped = typeof e !== 'string';
      for (const s of byContext.get(scoped ? e.context : e) ?? []) {
        if (scoped && Object.keys(e.params).some((n) => s.p[n] !== e.params[n])) continue;
        if (why && !s.a) s.ls.forEach((l) => (l.h = true));
        add(s, e, spread, why);
      }
    }
  };

  // ---- connection ----

  const opened = (): void => {
    ready = everReady = true;
    setState('open', null);
    stableT = setT(() => (tries = 0), o.stableAfter ?? 5e3);
    subs.forEach((s) => !s.x && sendSub(s));
    chans.forEach((c) => !c.x && sendChan(c));
    const q = outbox;
    outbox = [];
    for (const f of q) {
      const c = calls.get(f['id'] as number);
      if (c) c.f = undefined;
      raw(f);
    }
  };

  const refresh = (): void => {
    if (!tokenFn || refreshing || !ready) return;
    refreshing = true;
    const s = sock;
    Promise.resolve()
      .then(tokenFn)
      .then(
      (token) => {
        refreshing = false;
        if (sock === s && ready) raw({ action: 'refresh', token, ref: 'refresh' });
      },
      () => (refreshing = false), // the hub's 4004 will make the next connection fetch a token
    );
  };

  /** Plans a refresh `refreshBefore` s before a new `expires` (the `expiring` frame is the backstop). */
  const expiresAt = (exp: unknown): void => {
    if (!tokenFn || typeof exp !== 'number' || exp === lastExpires) return;
    lastExpires = exp;
    clearT(refreshT);
    const ms = exp * 1e3 - now() - (o.refreshBefore ?? 60) * 1e3;
    if (ms < 2 ** 31) refreshT = setT(refresh, ms > 0 ? ms : 0);
  };

  const lost = (code: number, text: string): void => {
    // auto (SPEC 6.1): a transport that cannot even open gives way to the
    // other one; a stream that did open and ended tries a WebSocket first
    // again (it may have been a passing failure), falling back if that fails
    if (sock && WS && SSE) transport = sockOpened ? 'websocket' : transport === 'websocket' ? 'sse' : 'websocket';
    sock = undefined;
    ready = false;
    gen++;
    clearT(stableT);
    clearT(refreshT);
    lastExpires = null;
    calls.forEach((c, id) => c.f || settle(id, new RpcError('DISCONNECTED', 'connection lost')));
    // Whatever happens until the next ack is unseen: without a version, heal from 0:0.
    if (everReady) subs.forEach((s) => (s.o = true));
    if (stopped) return;
    const r = { code, reason: text };
    if (FATAL.includes(code)) return setState('closed', r);
    const delay =
      code === 4004 && tokenFn ? 0 : random() * (code === 1012 ? (o.drainDelay ?? 5e3) : Math.min(cap, base * 2 ** tries++));
    setState(everReady ? 'reconnecting' : 'connecting', r);
    retryT = setT(dial, delay);
  };

  /** Ends the current socket from this side and handles it as a loss (`close` events of a detached socket are ignored). */
  const drop = (code: number, text: string): void => {
    const s = sock;
    if (s) {
      s.onclose = s.onmessage = s.onopen = null;
      s.close(code, text);
    }
    lost(code, text);
  };

  const onFrame = (text: unknown): void => {
    let f: In;
    try {
      f = JSON.parse(text as string) as In;
    } catch {
      return;
    }
    if (typeof f !== 'object' || f === null) return;
    emit(frameLs, f as Record<string, unknown>);

    if (f.welcome) {
      welcome = f.welcome;
      identity = welcome.identity;
      spreadDefault = +welcome.spread_ms || 0;
      expiresAt(welcome.expires);
      if (!tokenFn) opened();
    } else if (f.authed) {
      identity = f.authed.identity;
      expiresAt(f.authed.expires);
      if (!ready) opened();
    } else if (f.expiring) {
      refresh();
    } else if (f.error) {
      if (f.ref === 'auth') return drop(4001, f.error.message ?? 'auth failed');
      // An rpc reply, or the hub refusing an rpc/ctx frame (it echoes `ref`: rate_limited, too_large...)
      const id = f.id ?? f.ref;
      if (calls.has(id as number)) return onReply(id, f);
      const it: Sub | Chan | undefined = (typeof f.context === 'string' ? subs : chans).get(keyFrom((f.context ?? f.channel) as string, f.params));
      // ended by the hub: not resent on reconnect; a resume over its rate (SPEC 14): again later
      if (it && f.unsubscribed) it.x = true;
      else if (it && f.error.code === 'rate_limited')
        setT(() => ready && !it.x && (subs.get(it.k) === it ? sendSub(it as Sub) : chans.get(it.k) === it && sendChan(it as Chan)), 1500);
      emit(errorLs, f as HubError);
    } else if (f.subscribed) {
      if (typeof f.context === 'string') {
        const s = subs.get(keyFrom(f.context, f.params));
        noteVersion(f.context, f.version);
        if (s) {
          const first = !s.a;
          s.a = true;
          s.o = false;
          if (typeof f.version === 'string') s.v = f.version;
          // SPEC 10: data fetched before the first ack may predate it; refetch
          // once, unless a healing frame just did, or the caller's version is
          // not older than the subscribe's since (no since: the ack's version).
          const ref = s.w || f.version;
          if (first)
            s.ls.forEach((l) => l.h || (l.v === undefined ? o.refetchOnAck === false : !!ref && notNewer(l.v, ref)) || once(s, l));
        }
      } else if (typeof f.channel === 'string') {
        const c = chans.get(keyFrom(f.channel, f.params));
        if (c && typeof f.epoch === 'string' && typeof f.seq === 'number') {
          if (c.e !== f.epoch || (c.q as number) < f.seq) c.q = f.seq;
          c.e = f.epoch;
        }
      }
    } else if (f.invalidate !== undefined) {
      let list: Entry[];
      try {
        list = invalidationsFrom(f as InvalidationSource);
      } catch {
        return;
      }
      if (typeof f.versions === 'object') {
        for (const c in f.versions) {
          noteVersion(c, f.versions[c]);
          // A healing frame's version is read from Redis like an ack's: not a stream position.
          if (!f.reason) noteVersion(c, f.versions[c], streamed);
        }
      }
      deliver(list, typeof f.spread_ms === 'number' ? f.spread_ms : spreadDefault, f.reason);
    } else if (f.gap) {
      const { channel, params, ...gap } = f.gap;
      const c = chans.get(keyFrom(channel, params));
      if (c) emit(c.g, gap);
    } else if (f.id !== undefined && f.ok !== undefined) {
      onReply(f.id, f);
    } else if (f.presence) {
      const list = f.presence.members ?? [];
      if (calls.has(f.ref as number)) settle(f.ref as number, null, list);
      else if (f.ref === undefined) {
        const c = chans.get(keyFrom(f.presence.channel, f.presence.params));
        if (c) emit(c.s, list);
      }
    } else if (f.join || f.leave) {
      const e = (f.join ?? f.leave) as PresenceEvent;
      const c = chans.get(keyFrom(e.channel, e.params));
      if (c) emit(f.join ? c.j : c.l, e.member);
    } else if (typeof f.channel === 'string' && !('unsubscribed' in f)) {
      const c = chans.get(keyFrom(f.channel, f.params));
      if (!c) return;
      const m: ChannelMessage = { type: f.type ?? 'message', data: f.data };
      if (typeof f.seq === 'number' && typeof f.epoch === 'string') {
        if (f.epoch === c.e && f.seq <= (c.q as number)) return; // replay and live delivery overlapped
        c.e = m.epoch = f.epoch;
        c.q = m.seq = f.seq;
      }
      if (typeof f.ts === 'number') m.ts = f.ts;
      emit(c.m, m);
    }
  };

  const keyFrom = (name: string, params: ParamsInput | undefined): string => {
    try {
      return scope(name, params)[1];
    } catch {
      return '';
    }
  };

  function dial(): void {
    retryT = undefined;
    const g = ++gen;
    const go = (token?: string): void => {
      if (g !== gen || stopped) return;
      let s: SocketLike;
      sockOpened = false;
      try {
        s = transport === 'sse' ? new (SSE as SocketConstructor)(o.url) : new (WS as SocketConstructor)(o.url, o.protocols);
      } catch (e) {
        if (WS && SSE) transport = transport === 'websocket' ? 'sse' : 'websocket';
        return lost(1006, String(e));
      }
      sock = s;
      s.onopen = () => {
        sockOpened = true;
        if (token !== undefined) raw({ action: 'auth', token, ref: 'auth' });
      };
      s.onmessage = (e) => sock === s && onFrame(e.data);
      // Browsers follow a failed connection's `error` with `close` (1006);
      // Node 20's WebSocket (undici 6) fires only `error`, and would hang here.
      s.onerror = s.onclose = (e) => sock === s && lost(e.code || 1006, e.reason || '');
    };
    if (tokenFn) {
      Promise.resolve()
        .then(tokenFn)
        .then(go, (e) => g === gen && lost(1006, 'token: ' + String(e)));
    } else go();
  }

  // ---- rpc ----

  function settle(id: number, e: RpcError | null, v?: unknown): void {
    const c = calls.get(id);
    if (!c) return;
    calls.delete(id);
    clearT(c.t);
    c.u?.();
    if (c.f) outbox = outbox.filter((f) => f !== c.f);
    if (e) c.no(e);
    else c.ok(v);
  }

  function onReply(id: unknown, f: In): void {
    const e = f.error;
    if (f.ok) settle(id as number, null, f.data);
    else settle(id as number, new RpcError(e?.code ?? 'INTERNAL', e?.message ?? '', e?.details));
  }

  /** Sends the frame `make` builds (a throw rejects: bad names, params, args) and waits for its reply. */
  const request = <T>(make: () => Out, opts: CallOptions | undefined): Promise<T> =>
    new Promise((ok, no) => {
      const f = make();
      const sig = opts?.signal;
      const id = ++rid; // never 0: Mizan's consumer treats a falsy id as missing
      const abort = (): void => settle(id, new RpcError('ABORTED', 'aborted', sig?.reason));
      f['id'] = f['ref'] = id;
      calls.set(id, {
        ok: ok as (v: unknown) => void,
        no,
        t: setT(() => settle(id, new RpcError('TIMEOUT', 'no reply')), opts?.timeout ?? o.rpcTimeout ?? 35e3),
        u: sig && (() => sig.removeEventListener('abort', abort)),
        f: ready ? undefined : f,
      });
      // Already aborted: settled before anything is sent or queued.
      if (sig?.aborted) return abort();
      sig?.addEventListener('abort', abort);
      out(f);
    });

  // ---- online / visibility ----

  const wake = (): void => {
    if (retryT !== undefined && doc?.visibilityState !== 'hidden') {
      clearT(retryT);
      dial();
    }
  };
  const listen = (on: boolean): void => {
    const m = on ? 'addEventListener' : 'removeEventListener';
    win?.[m]('online', wake);
    doc?.[m]('visibilitychange', wake);
  };

  listen(true);
  dial();

  return {
    get state() {
      return state;
    },
    get transport() {
      return transport;
    },
    get reason() {
      return reason;
    },
    get welcome() {
      return welcome;
    },
    get identity() {
      return identity;
    },
    onState: (l) => addTo(stateLs, l),
    onError: (l) => addTo(errorLs, l),
    onFrame: (l) => addTo(frameLs, l),

    subscribe(context, params, onInvalidate, opts) {
      const [p, k] = scope(context, params);
      let s = subs.get(k);
      if (!s) {
        s = { c: context, p, k, ls: new Set(), since: opts?.since, a: false, o: !ready && everReady };
        subs.set(k, s);
        const set = byContext.get(context) ?? new Set<Sub>();
        byContext.set(context, set.add(s));
        if (ready) sendSub(s);
      } else if (s.x && !(s.x = false) && ready) sendSub(s); // asked for anew
      const sub = s;
      const v = opts?.since;
      const l: Listener = { f: onInvalidate, s: opts?.spread !== false, v };
      sub.ls.add(l);
      // Held already: events up to its resume point reached it before this caller's data was known to have them.
      if (s.a && v !== undefined && !notNewer(v, point(s) ?? '')) once(s, l);
      return () => {
        if (!sub.ls.delete(l)) return;
        clearT(l.t);
        l.p = undefined; // only mounted subscribers refetch
        if (!sub.ls.size) {
          release(
            () => !sub.ls.size && subs.get(k) === sub && subs.delete(k) && !!byContext.get(context)?.delete(sub),
            { action: 'unsubscribe', context, params: p },
          );
        }
      };
    },

    invalidate: (source) => deliver(invalidationsFrom(source), 0, undefined),

    version: (context) => versions.get(context),

    channel(name, params) {
      const [p, k] = scope(name, params);
      let c = chans.get(k);
      if (!c) {
        chans.set(k, (c = { n: name, p, k, refs: 0, m: new Set(), g: new Set(), j: new Set(), l: new Set(), s: new Set() }));
        if (ready) sendChan(c);
      } else if (c.x && !(c.x = false) && ready) sendChan(c);
      const ch = c;
      ch.refs++;
      let closed = false;
      const mine = new Set<() => void>();
      const track = (off: () => void): (() => void) => {
        mine.add(off);
        return () => {
          mine.delete(off);
          off();
        };
      };
      return {
        name,
        params: p,
        key: k,
        send(data = null) {
          if (closed) throw new Error('channel closed');
          out({ action: 'message', channel: name, params: p, data });
        },
        on: (l) => track(addTo(ch.m, l)),
        onGap: (l) => track(addTo(ch.g, l)),
        presence: (opts) =>
          request<PresenceMember[]>(() => {
            if (closed) throw new Error('channel closed');
            return { action: 'presence', channel: name, params: p };
          }, opts),
        onJoin: (l) => track(addTo(ch.j, l)),
        onLeave: (l) => track(addTo(ch.l, l)),
        onMembers: (l) => track(addTo(ch.s, l)),
        close() {
          if (closed) return;
          closed = true;
          mine.forEach((off) => off());
          if (!--ch.refs) release(() => !ch.refs && chans.get(k) === ch && chans.delete(k), { action: 'unsubscribe', channel: name, params: p });
        },
      };
    },

    rpc: <T>(fn: string, args: unknown = {}, opts?: CallOptions) =>
      request<T>(() => {
        scope(fn, {}); // the name rules of SPEC section 1
        if (typeof args !== 'object' || !args) throw new ProtocolError('bad_frame', 'args: not an object or array');
        return { action: 'rpc', fn, args };
      }, opts),

    ctx: <T>(context: string, params: ParamsInput = {}, opts?: CallOptions) => request<T>(() => ({ action: 'ctx', context, params: scope(context, params)[0] }), opts),

    reconnect() {
      if (stopped) listen(true);
      stopped = true; // so that dropping the current socket plans no retry
      drop(4000, 'reconnect');
      stopped = false;
      tries = 0;
      clearT(retryT);
      setState(everReady ? 'reconnecting' : 'connecting', reason);
      dial();
    },

    close() {
      if (stopped) return;
      stopped = true;
      listen(false);
      clearT(retryT);
      retryT = undefined;
      const r = { code: 1000, reason: 'client closed' };
      drop(1000, r.reason);
      calls.forEach((_c, id) => settle(id, new RpcError('DISCONNECTED', 'client closed')));
      setState('closed', r);
    },
  };
}
