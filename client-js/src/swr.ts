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
 */

import type { HubClient, SubscribeOptions } from './client.js';
import type { Scope } from './invalidation.js';
import { matches } from './key.js';
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
}

export interface SwrAdapter {
  /**
   * Subscribes to a context scope while the caller holds it (call in an
   * effect, return the result as its cleanup); an invalidation calls
   * `mutate(key)`.
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
}

const arrayScope = (key: unknown): Scope | null =>
  Array.isArray(key) && typeof key[0] === 'string' ? { context: key[0], params: (key[1] ?? {}) as ParamsInput } : null;

export function swrAdapter(client: Pick<HubClient, 'subscribe'>, mutate: SWRMutate, options: SwrOptions = {}): SwrAdapter {
  const keyOf = options.key ?? ((context, params) => [context, params]);
  const scopeOf = options.scope ?? arrayScope;
  return {
    track(context, params = {}, key = keyOf(context, params), since) {
      return client.subscribe(context, params, () => void mutate(key), since === undefined ? options : { ...options, since });
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
