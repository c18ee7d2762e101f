/**
 * @mizan/hub-client/tanstack: hub invalidations → TanStack Query's
 * `queryClient.invalidateQueries({queryKey})`. Takes the query client as an
 * argument; no dependency on TanStack Query. `invalidateQueries` refetches
 * the queries that are active (mounted) and marks the others stale, and the
 * adapter only subscribes while a query is tracked, so only mounted
 * contexts refetch.
 */

import type { HubClient, SubscribeOptions } from './client.js';
import type { ParamsInput } from './values.js';

/** What the adapter uses of a TanStack Query `QueryClient` (v4 and v5 have it). */
export interface QueryClientLike {
  invalidateQueries(filters: { queryKey: readonly unknown[]; exact?: boolean }): unknown;
  getQueryCache?(): QueryCacheLike;
}

/** What `watch` uses of a `Query`. */
export interface QueryLike {
  readonly queryKey: readonly unknown[];
  readonly queryHash: string;
  getObserversCount(): number;
}

/** What `watch` uses of the `QueryCache`. */
export interface QueryCacheLike {
  subscribe(listener: (event: { type: string; query: QueryLike }) => void): () => void;
  getAll(): QueryLike[];
}

/** A context scope, as `watch`'s `toScope` returns it. */
export interface ScopeInput {
  context: string;
  params?: ParamsInput;
}

export interface TanstackOptions extends SubscribeOptions {
  /** The query key of a context scope for `track` (default `[context, params]`). */
  queryKey?: (context: string, params: ParamsInput) => readonly unknown[];
}

export interface TanstackAdapter {
  /**
   * Subscribes to a context scope while the caller holds it (call in an
   * effect, return the result as its cleanup); an invalidation calls
   * `invalidateQueries({queryKey})`.
   */
  track(context: string, params?: ParamsInput, queryKey?: readonly unknown[]): () => void;
  /**
   * Follows the query cache: a query with at least one observer whose key
   * `toScope` maps to a context scope is subscribed, and unsubscribed when its
   * last observer goes; an invalidation calls `invalidateQueries({queryKey,
   * exact: true})`. Returns the function that stops watching.
   */
  watch(toScope: (queryKey: readonly unknown[]) => ScopeInput | null | undefined): () => void;
}

export function tanstackAdapter(
  client: Pick<HubClient, 'subscribe'>,
  queryClient: QueryClientLike,
  options: TanstackOptions = {},
): TanstackAdapter {
  const keyOf = options.queryKey ?? ((context, params) => [context, params]);
  return {
    track(context, params = {}, queryKey = keyOf(context, params)) {
      return client.subscribe(context, params, () => void queryClient.invalidateQueries({ queryKey }), options);
    },

    watch(toScope) {
      const cache = queryClient.getQueryCache?.();
      if (!cache) throw new Error('tanstackAdapter.watch: the query client has no getQueryCache()');
      const live = new Map<string, () => void>();
      const sync = (q: QueryLike, removed: boolean): void => {
        const unsubscribe = live.get(q.queryHash);
        if (!removed && q.getObserversCount() > 0) {
          if (unsubscribe) return;
          const scope = toScope(q.queryKey);
          if (!scope) return;
          const queryKey = q.queryKey;
          const off = client.subscribe(
            scope.context,
            scope.params,
            () => void queryClient.invalidateQueries({ queryKey, exact: true }),
            options,
          );
          live.set(q.queryHash, off);
        } else if (unsubscribe) {
          live.delete(q.queryHash);
          unsubscribe();
        }
      };
      for (const q of cache.getAll()) sync(q, false);
      const stop = cache.subscribe((e) => {
        if (e.type === 'removed') sync(e.query, true);
        else if (e.type === 'added' || e.type === 'observerAdded' || e.type === 'observerRemoved') sync(e.query, false);
      });
      return () => {
        stop();
        live.forEach((off) => off());
        live.clear();
      };
    },
  };
}
