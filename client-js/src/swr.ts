/**
 * @mizan/hub-client/swr: hub invalidations → SWR's `mutate` (the global
 * `mutate` export or `useSWRConfig().mutate`), which revalidates the hooks
 * mounted on the keys it names. Takes `mutate` as an argument; no
 * dependency on SWR. The adapter only subscribes while a key or scope is
 * held, so only mounted contexts refetch.
 *
 * Two ways: `track(context, params, key)` mutates one key; `watch(context,
 * params)` holds a scope and mutates with SWR's filter function, so every
 * cached key inside the scope revalidates: `watch('todos', {list_id: 3})`
 * revalidates `['todos', {list_id: 3}]` and `['todos', {list_id: 3, page:
 * 2}]` (its pages, sorts, filters), never `['todos', {list_id: 4}]`.
 *
 * With `versions: true`, `track` waits for its key's data and subscribes
 * with `since` = the version the fetcher noted for the key (`note(key,
 * response)`: the response's `X-Mizan-Version`, SPEC 10.1), so the first
 * ack refetches only when the context changed after the data was read:
 *
 *     const hub = swrAdapter(client, mutate, { versions: true });
 *     const fetcher = async (key: [string, object]) => {
 *       const r = await fetch(`/api/mizan/ctx/${key[0]}/`);
 *       hub.note(key, r);
 *       return r.json();
 *     };
 *     useSWR(['todos', {}], fetcher);
 *     useEffect(() => hub.track('todos', {}), []);
 */

import type { HubClient, SubscribeOptions } from './client.js';
import type { Scope } from './invalidation.js';
import { matches } from './key.js';
import { VersionNotes } from './notes.js';
import type { VersionSource } from './version.js';
import type { ParamsInput } from './values.js';

/**
 * SWR's `mutate`, called with a key or a key filter only. Declared as a
 * method so that SWR's own (overloaded, generic) type is assignable to it.
 */
export type SWRMutate = { mutate(key: unknown): unknown }['mutate'];

export interface SwrOptions extends SubscribeOptions {
  /** The SWR key of a context scope (default `[context, params]`, params as given). */
  key?: (context: string, params: ParamsInput) => unknown;
  /**
   * The inverse of `key`, for `watch`: the context scope an SWR key stands
   * for, or null for a key that is no context's. Default: `[context,
   * params?]` arrays. Give it when `key` builds another shape.
   */
  scope?: (key: unknown) => Scope | null;
  /**
   * `track` (without an explicit `since`) subscribes once `note` recorded
   * the versions of its key's data, with `since` = its context's version
   * there ("0:0" when the answer carried none).
   */
  versions?: boolean;
}

export interface SwrAdapter {
  /**
   * Subscribes to a context scope while the caller holds it (call in an
   * effect, return the result as its cleanup); an invalidation calls
   * `mutate(key)`. With `versions: true` and no `since`, the subscribe
   * waits for `note(key, …)` (the key's data is there); returning before
   * it cancels the wait.
   */
  track(context: string, params?: ParamsInput, key?: unknown, since?: string): () => void;
  /**
   * Subscribes to a context scope while the caller holds it; an
   * invalidation calls `mutate(filter)`, where `filter(key)` says whether
   * the key (read by `options.scope`) is inside the scope: same context,
   * and every param of the scope with the same value (SPEC section 4's
   * rule, the scope as the entry). The hub delivers only entries that match
   * the scope, so each of them matches every key inside it. Returns the
   * function that stops it.
   */
  watch(context: string, params?: ParamsInput, since?: string): () => void;
  /**
   * Records the versions the data of `key` was read at (`versionFrom(source)`:
   * a `Response`, its `Headers`, a header value, embedded data); call it in
   * the fetcher on every answer, an error status included, before
   * returning, or a `versions` track of the key never subscribes. Throws a
   * `ProtocolError` for a malformed header (recorded as no versions), which
   * fails the fetch.
   */
  note(key: unknown, source: VersionSource): void;
}

const arrayScope = (key: unknown): Scope | null =>
  Array.isArray(key) && typeof key[0] === 'string' ? { context: key[0], params: (key[1] ?? {}) as ParamsInput } : null;

export function swrAdapter(client: Pick<HubClient, 'subscribe'>, mutate: SWRMutate, options: SwrOptions = {}): SwrAdapter {
  const keyOf = options.key ?? ((context, params) => [context, params]);
  const scopeOf = options.scope ?? arrayScope;
  const noted = new VersionNotes();
  return {
    track(context, params = {}, key = keyOf(context, params), since) {
      const subscribe = (s: string | undefined): (() => void) =>
        client.subscribe(context, params, () => void mutate(key), s === undefined ? options : { ...options, since: s });
      if (!options.versions || since !== undefined) return subscribe(since);
      let unsubscribe: (() => void) | null = null;
      const cancel = noted.wait(key, (versions) => (unsubscribe = subscribe(versions[context] ?? '0:0')));
      return () => {
        cancel();
        unsubscribe?.();
        unsubscribe = null;
      };
    },

    note(key, source) {
      noted.note(key, source);
    },

    watch(context, params = {}, since) {
      return client.subscribe(
        context,
        params,
        () =>
          void mutate((key: unknown) => {
            const s = scopeOf(key);
            try {
              return !!s && matches({ context, params }, s);
            } catch {
              return false; // a key whose params are no context's (nested values...): not ours
            }
          }),
        since === undefined ? options : { ...options, since },
      );
    },
  };
}

/** The versions a context response was read at (SPEC 10.1), for `since`. */
export { versionFrom } from './version.js';
export type { VersionSource } from './version.js';
