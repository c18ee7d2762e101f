/**
 * @mizan/hub-client/tanstack: hub invalidations → TanStack Query's
 * `queryClient.invalidateQueries({queryKey})`. Takes the query client as an
 * argument; no dependency on TanStack Query. `invalidateQueries` refetches
 * the queries that are active (mounted) and marks the others stale, and the
 * adapter only subscribes while a query is tracked, so only mounted
 * contexts refetch.
 *
 * With `versions: true`, `watch` subscribes a query once its data is there,
 * with `since` = the version its query function noted (`note(queryKey,
 * response)`, the response's `X-Mizan-Version`, SPEC 10.1), so the first ack
 * refetches only when the context changed after the data was read; a query
 * that noted none subscribes with `since` "0:0" (refetched unless its
 * context was never published).
 *
 *     const hub = tanstackAdapter(client, queryClient, { versions: true });
 *     hub.watch((key) => ({ context: key[0] as string, params: key[1] as ParamsInput }));
 *     useQuery({ queryKey: ['todos', {}], queryFn: async ({ queryKey }) => {
 *       const r = await fetch('/api/mizan/ctx/todos/');
 *       hub.note(queryKey, r);
 *       return r.json();
 *     } });
 */

import type { HubClient, SubscribeOptions } from './client.js';
import type { ParamsInput } from './values.js';
import { VersionNotes } from './notes.js';
import type { VersionSource } from './version.js';

/** What the adapter uses of a TanStack Query `QueryClient` (v4 and v5 have it). */
export interface QueryClientLike {
  invalidateQueries(filters: { queryKey: readonly unknown[]; exact?: boolean }): unknown;
  getQueryCache?(): QueryCacheLike;
}

/** What `watch` uses of a `Query`. */
export interface QueryLike {
  readonly queryKey: readonly unknown[];
  readonly queryHash: string;
  /** when data or an error last arrived (0: never); v4 and v5 have it */
  readonly state?: { readonly dataUpdatedAt: number; readonly errorUpdatedAt: number };
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
  /** `watch` waits for a query's data and subscribes with the version `note` recorded for it (see above) */
  versions?: boolean;
}

export interface TanstackAdapter {
  /**
   * Subscribes to a context scope while the caller holds it (call in an
   * effect, return the result as its cleanup); an invalidation calls
   * `invalidateQueries({queryKey})`.
   */
  track(context: string, params?: ParamsInput, queryKey?: readonly unknown[], since?: string): () => void;
  /**
   * Follows the query cache: a query with at least one observer whose key
   * `toScope` maps to a context scope is subscribed, and unsubscribed when its
   * last observer goes; an invalidation calls `invalidateQueries({queryKey,
   * exact: true})`. Returns the function that stops watching.
   */
  watch(toScope: (queryKey: readonly unknown[]) => ScopeInput | null | undefined): () => void;
  /**
   * Records the versions a query's data was read at (`versionFrom(source)`:
   * a `Response`, its `Headers`, a header value, embedded data); call it in
   * the query function before returning. Throws a `ProtocolError` for a
   * malformed header, which fails the query.
   */
  note(queryKey: readonly unknown[], source: VersionSource): void;
}

export function tanstackAdapter(
  client: Pick<HubClient, 'subscribe'>,
  queryClient: QueryClientLike,
  options: TanstackOptions = {},
): TanstackAdapter {
  const keyOf = options.queryKey ?? ((context, params) => [context, params]);
  const noted = new VersionNotes();
  return {
    track(context, params = {}, queryKey = keyOf(context, params), since) {
      return client.subscribe(context, params, () => void queryClient.invalidateQueries({ queryKey }), since === undefined ? options : { ...options, since });
    },

    note(queryKey, source) {
      noted.note(queryKey, source);
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
          let opts: SubscribeOptions = options;
          if (options.versions) {
            // No data yet: the 'updated' event of its fetch calls sync again.
            if (q.state && !q.state.dataUpdatedAt && !q.state.errorUpdatedAt) return;
            opts = { ...options, since: noted.get(queryKey)?.[scope.context] ?? '0:0' };
          }
          const off = client.subscribe(
            scope.context,
            scope.params,
            () => void queryClient.invalidateQueries({ queryKey, exact: true }),
            opts,
          );
          live.set(q.queryHash, off);
        } else if (unsubscribe) {
          live.delete(q.queryHash);
          unsubscribe();
        }
      };
      for (const q of cache.getAll()) sync(q, false);
      const stop = cache.subscribe((e) => {
        if (e.type === 'removed') {
          noted.delete(e.query.queryKey);
          sync(e.query, true);
        } else if (e.type === 'added' || e.type === 'observerAdded' || e.type === 'observerRemoved' || (e.type === 'updated' && options.versions))
          sync(e.query, false);
      });
      return () => {
        stop();
        live.forEach((off) => off());
        live.clear();
      };
    },
  };
}

/** The versions a context response was read at (SPEC 10.1), for `since`. */
export { versionFrom } from './version.js';
export type { VersionSource } from './version.js';
