/**
 * @mizan/hub-client/mizan: connects Mizan's browser runtime to the hub, so a
 * context that is mounted in this tab refetches when any tab, process or
 * worker invalidates it.
 *
 * The runtime's JavaScript is not published where this package could read
 * it (django-izana ships the Python side only), so this adapter assumes the
 * interface the framework's notes describe — generated code "uses the
 * runtime directly (mizanFetch, mizanCall, registerContext)":
 *
 *     registerContext(name, params, refetch) → unregister
 *
 * called by a generated context provider when it mounts (and `unregister`
 * when it unmounts), with `refetch` re-running the context fetch
 * (`GET /api/mizan/ctx/<name>/?params`). If the real signature differs,
 * only this file changes.
 *
 * A provider that has its data before it registers passes the version it
 * was read at (`versionFrom(response)[name]`, SPEC 10.1) as `since`: the
 * first ack then refetches only if the context changed after the read.
 */

import type { HubClient, SubscribeOptions } from './client.js';
import type { ParamsInput } from './values.js';

/** The part of Mizan's runtime this adapter uses (assumed; see the module comment). */
export interface MizanRuntime {
  registerContext(name: string, params: ParamsInput, refetch: () => unknown, since?: string): () => void;
}

/**
 * Returns a `registerContext` to use in place of the runtime's: it
 * registers with `runtime` (when given) and subscribes to the hub, calling
 * `refetch` on every invalidation (after the refetch spread unless
 * `options.spread` is false); the returned function undoes both. Only
 * registered, that is mounted, contexts are subscribed, so only they refetch.
 */
export function mizanAdapter(
  client: Pick<HubClient, 'subscribe'>,
  runtime?: MizanRuntime | null,
  options?: SubscribeOptions,
): MizanRuntime {
  return {
    registerContext(name, params, refetch, since) {
      const unregister = runtime?.registerContext(name, params, refetch);
      const unsubscribe = client.subscribe(name, params, () => void refetch(), since === undefined ? options : { ...options, since });
      return () => {
        unsubscribe();
        unregister?.();
      };
    },
  };
}

/** The versions a context response was read at (SPEC 10.1), for `since`. */
export { versionFrom } from './version.js';
export type { VersionSource } from './version.js';
