/**
 * The versions an adapter's fetcher noted per cache key (SPEC 10.1), shared
 * by the TanStack Query and SWR adapters: a query function or SWR fetcher
 * calls `note(key, response)` when its answer arrives, and the adapter
 * subscribes the key's context with `since` = the version noted for it.
 */

import { versionFrom } from './version.js';
import type { VersionSource } from './version.js';

type Versions = { [context: string]: string };

/**
 * A cache key's identity: JSON with plain objects' keys sorted (TanStack's
 * default `hashKey`; SWR's `stableHash` treats keys the same way), so
 * `['todos', {a: 1, b: 2}]` and `['todos', {b: 2, a: 1}]` are one key.
 */
export const keyHash = (key: unknown): string =>
  String(
    JSON.stringify(key, (_, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
        : v,
    ),
  );

export class VersionNotes {
  private readonly noted = new Map<string, Versions>();
  private readonly waiting = new Map<string, Set<(versions: Versions) => void>>();

  /**
   * Records the versions of `source` for `key` and wakes whoever waits for
   * it. A malformed header is recorded as no versions (the subscription
   * then takes "0:0": refetched unless the context was never published),
   * and the `ProtocolError` is thrown on, to fail the fetch that carried it.
   */
  note(key: unknown, source: VersionSource): void {
    let versions: Versions = {};
    let error: unknown = null;
    try {
      versions = versionFrom(source);
    } catch (e) {
      error = e;
    }
    const h = keyHash(key);
    this.noted.set(h, versions);
    const waiters = this.waiting.get(h);
    this.waiting.delete(h);
    waiters?.forEach((w) => w(versions));
    if (error) throw error;
  }

  get(key: unknown): Versions | undefined {
    return this.noted.get(keyHash(key));
  }

  delete(key: unknown): void {
    this.noted.delete(keyHash(key));
  }

  /**
   * Calls `then` with the versions noted for `key`: now when some are
   * noted, else at the next `note(key)`. Returns the function that cancels
   * a call still waiting.
   */
  wait(key: unknown, then: (versions: Versions) => void): () => void {
    const known = this.get(key);
    if (known) {
      then(known);
      return () => undefined;
    }
    const h = keyHash(key);
    let waiters = this.waiting.get(h);
    if (!waiters) this.waiting.set(h, (waiters = new Set()));
    const w = (versions: Versions): void => then(versions);
    waiters.add(w);
    return () => {
      const set = this.waiting.get(h);
      set?.delete(w);
      if (set?.size === 0) this.waiting.delete(h);
    };
  }
}
