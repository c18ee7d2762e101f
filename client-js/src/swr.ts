/**
 * @mizan/hub-client/swr: hub invalidations → SWR's `mutate(key)` (the global
 * `mutate` export or `useSWRConfig().mutate`), which revalidates the hooks
 * mounted on that key. Takes `mutate` as an argument; no dependency on SWR.
 * The adapter only subscribes while a key is tracked, so only mounted
 * contexts refetch.
 */

import type { HubClient, SubscribeOptions } from './client.js';
import type { ParamsInput } from './values.js';

/**
 * SWR's `mutate`, called with a key only. Declared as a method so that SWR's
 * own (overloaded, generic) type is assignable to it.
 */
export type SWRMutate = { mutate(key: unknown): unknown }['mutate'];

export interface SwrOptions extends SubscribeOptions {
  /** The SWR key of a context scope (default `[context, params]`, params as given). */
  key?: (context: string, params: ParamsInput) => unknown;
}

export interface SwrAdapter {
  /**
   * Subscribes to a context scope while the caller holds it (call in an
   * effect, return the result as its cleanup); an invalidation calls
   * `mutate(key)`.
   */
  track(context: string, params?: ParamsInput, key?: unknown): () => void;
}

export function swrAdapter(client: Pick<HubClient, 'subscribe'>, mutate: SWRMutate, options: SwrOptions = {}): SwrAdapter {
  const keyOf = options.key ?? ((context, params) => [context, params]);
  return {
    track(context, params = {}, key = keyOf(context, params)) {
      return client.subscribe(context, params, () => void mutate(key), options);
    },
  };
}
