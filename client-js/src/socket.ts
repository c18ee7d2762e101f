/**
 * The socket surface the client drives, whichever transport is under it:
 * the browser's `WebSocket` (and the `ws` package's) has it, and the
 * Server-Sent Events transport (`sse.ts`) implements it. Types only, below
 * both the client and its transports so that neither imports the other for them.
 */

/**
 * An event handler property. Declared through a method so that its
 * parameter is bivariant: the browser's `(ev: MessageEvent) => any` fits
 * `Handler<{ data: unknown }>`.
 */
export type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'] | null;

/** The WebSocket surface the client uses; the browser's `WebSocket` (and the `ws` package's) has it. */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown>;
  onmessage: Handler<{ data: unknown }>;
  onclose: Handler<{ code: number; reason: string }>;
  onerror?: Handler<unknown>;
}

export type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;
