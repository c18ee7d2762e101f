/**
 * @mizan/hub-client/react: `HubProvider`, `useHub`, `useInvalidation` and
 * `useChannel`. React is a peer dependency; the core entry does not import it.
 */

import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { ReactElement, ReactNode } from 'react';

import type { Channel, ChannelMessage, Gap, HubClient, InvalidationEvent, SubscribeOptions } from './client.js';
import { canonicalKey } from './key.js';
import type { ParamsInput } from './values.js';

const HubContext = createContext<HubClient | null>(null);

/** Makes `client` (from `connect`) the one the hooks below use. */
export function HubProvider(props: { client: HubClient; children?: ReactNode }): ReactElement {
  return createElement(HubContext.Provider, { value: props.client }, props.children);
}

/** The client of the nearest `HubProvider`; throws without one. */
export function useHub(): HubClient {
  const client = useContext(HubContext);
  if (!client) throw new Error('mizan-hub: no client here; wrap the tree in <HubProvider client={connect(...)}>');
  return client;
}

/** Keeps the latest value of a callback without re-running effects when it changes. */
function useLatest<T>(value: T): { current: T } {
  const ref = useRef(value);
  useEffect(() => {
    ref.current = value;
  });
  return ref;
}

/**
 * Subscribes the component to a context scope while it is mounted and
 * returns a counter that goes up on every invalidation of it (after the
 * refetch spread), so the component can refetch:
 *
 *     const v = useInvalidation('user', { user_id: 5 });
 *     useEffect(() => { load(); }, [v]);
 *
 * `onInvalidate`, when given, is called with the event as well. Params are
 * compared by canonical key, so a new object with the same values does not
 * resubscribe. Throws a `ProtocolError` (during render) for a bad name or
 * params.
 */
export function useInvalidation(
  context: string,
  params?: ParamsInput,
  onInvalidate?: (event: InvalidationEvent) => void,
  options?: SubscribeOptions,
): number {
  const client = useHub();
  const [count, setCount] = useState(0);
  const callback = useLatest(onInvalidate);
  const key = canonicalKey(context, params);
  const spread = options?.spread !== false;
  const since = options?.since;
  useEffect(() => {
    const opts: SubscribeOptions = { spread };
    if (since !== undefined) opts.since = since;
    return client.subscribe(
      context,
      params,
      (event) => {
        setCount((n) => n + 1);
        callback.current?.(event);
      },
      opts,
    );
    // `params` is represented by `key`.
  }, [client, key, spread, since]);
  return count;
}

export interface UseChannel {
  /** Sends a message on the channel (throws before the component has mounted). */
  send(data?: unknown): void;
  /** The latest message of this channel instance, or null. */
  last: ChannelMessage | null;
  /** The latest gap report of this channel instance, or null. */
  gap: Gap | null;
}

/**
 * Joins a channel instance while the component is mounted. Returns `send`,
 * the latest message and the latest gap report (both reset when name or
 * params change); `onMessage`, when given, sees every message.
 */
export function useChannel(name: string, params?: ParamsInput, onMessage?: (message: ChannelMessage) => void): UseChannel {
  const client = useHub();
  const key = canonicalKey(name, params);
  const [last, setLast] = useState<{ k: string; m: ChannelMessage } | null>(null);
  const [gap, setGap] = useState<{ k: string; g: Gap } | null>(null);
  const channel = useRef<Channel | null>(null);
  const callback = useLatest(onMessage);
  useEffect(() => {
    const ch = client.channel(name, params);
    channel.current = ch;
    ch.on((m) => {
      setLast({ k: key, m });
      callback.current?.(m);
    });
    ch.onGap((g) => setGap({ k: key, g }));
    return () => {
      if (channel.current === ch) channel.current = null;
      ch.close();
    };
  }, [client, key]);
  const send = useCallback((data?: unknown) => {
    if (!channel.current) throw new Error('useChannel: send() before the component mounted');
    channel.current.send(data);
  }, []);
  return { send, last: last?.k === key ? last.m : null, gap: gap?.k === key ? gap.g : null };
}
