/**
 * The Server-Sent Events transport (SPEC 6.1) behind the client's
 * `SocketLike`: an `EventSource` on the hub's `/sse` carries the hub's
 * frames, `POST /sse/<conn>?secret=` the browser's. The client uses it by
 * itself when a WebSocket cannot open (`connect({transport})`).
 */

import type { Handler, SocketConstructor, SocketLike } from './socket.js';

/** The `EventSource` surface used here; the browser's has it. */
export interface EventSourceLike {
  onmessage: ((e: { data: string }) => void) | null;
  onerror: ((e: unknown) => void) | null;
  close(): void;
}

export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

/** The `fetch` surface used here (a POST with a text body). */
export type FetchLike = (
  url: string,
  init: { method: string; body: string; headers: Record<string, string>; credentials: 'omit' },
) => Promise<{ status: number }>;

/**
 * A `SocketConstructor` over a stream at the hub URL's origin + `/sse`:
 * `onopen` when the stream's first event names it, `onmessage` per frame,
 * `onclose` with the hub's close event, or 1006 when the stream or a POST
 * fails (the client's own backoff then reconnects, never the EventSource's).
 * Frames are POSTed in order: one POST at a time, numbered, what queued
 * meanwhile together, one per line.
 */
export function sseSocket(ES: EventSourceConstructor, post: FetchLike): SocketConstructor {
  return class implements SocketLike {
    onopen: Handler<unknown> = null;
    onmessage: Handler<{ data: unknown }> = null;
    onclose: Handler<{ code: number; reason: string }> = null;
    es: EventSourceLike;
    u: string;
    to = '';
    q: string[] = [];
    busy = false;
    done = false;
    /** the last POST's number: the hub puts POSTs that reach it through different processes back in order */
    n = 0;

    constructor(url: string) {
      // ws://host:port/any -> http://host:port/sse (wss -> https)
      this.u = url.replace(/^ws/, 'http').replace(/^(\w+:\/\/[^/?#]*).*$/, '$1/sse');
      const es = (this.es = new ES(this.u, { withCredentials: true }));
      es.onmessage = (e) => {
        const t = e.data;
        if (this.done) return;
        if (/^\{"(stream|close)"/.test(t)) {
          const f = JSON.parse(t) as { stream?: { conn: string; secret: string }; close?: { code: number; reason: string } };
          if (f.close) return this.end(f.close.code, f.close.reason);
          if (f.stream) {
            this.to = `${this.u}/${encodeURIComponent(f.stream.conn)}?secret=${encodeURIComponent(f.stream.secret)}`;
            this.onopen?.({});
            return this.pump();
          }
        }
        this.onmessage?.({ data: t });
      };
      es.onerror = () => this.end(1006, 'stream failed');
    }

    pump(): void {
      if (this.busy || this.done || !this.to || !this.q.length) return;
      const body = this.q.join('\n');
      const fail = (why: unknown): void => this.end(1006, 'POST: ' + String(why));
      this.q = [];
      this.busy = true;
      // No cookies: the secret is the credential, and `*` answers need none.
      post(`${this.to}&n=${++this.n}`, { method: 'POST', body, headers: { 'Content-Type': 'text/plain' }, credentials: 'omit' }).then(
        (r) => ((this.busy = false), r.status === 202 ? this.pump() : fail(r.status)),
        fail,
      );
    }

    send(data: string): void {
      this.q.push(data);
      this.pump();
    }

    close(code = 1000, reason = ''): void {
      // like a WebSocket's: the close event follows, not within the call
      void Promise.resolve().then(() => this.end(code, reason));
    }

    end(code: number, reason: string): void {
      if (this.done) return;
      this.done = true;
      this.es.close();
      this.onclose?.({ code, reason });
    }
  };
}
