'use client';
/**
 * @mizan/hub-client/react: `HubProvider`, `useHub`, `useHubState`,
 * `useInvalidation`, `useChannel` and `usePresence`. React is a peer dependency; the core
 * entry does not import it. The directive above marks the entry as client
 * code for React Server Components (Next.js App Router): its hooks and
 * context cannot run in a server component.
 */

import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { ReactElement, ReactNode } from 'react';

import type { Channel, ChannelMessage, CloseInfo, Gap, HubClient, Identity, InvalidationEvent, State, SubscribeOptions } from './client.js';
import type { PresenceMember } from './envelope.js';
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

/** What `useHubState` returns: the client's state, why the last connection ended, and who it is. */
export interface HubState {
  state: State;
  /** why the last connection ended (`{code, reason}`), or null */
  reason: CloseInfo | null;
  identity: Identity | null;
}

const snapshot = (c: HubClient): HubState => ({ state: c.state, reason: c.reason, identity: c.identity });

/**
 * The connection's state, re-rendering on every change: show "reconnecting…",
 * or a log-in prompt when `state` is `closed` after 4001/4005.
 *
 *     const { state, reason } = useHubState();
 *     if (state === 'closed' && reason?.code === 4001) return <LogIn />;
 */
export function useHubState(): HubState {
  const client = useHub();
  const [value, setValue] = useState(() => snapshot(client));
  useEffect(() => {
    // A change between render and this effect (or a new client) is caught up here.
    const update = (): void =>
      setValue((old) => {
        const now = snapshot(client);
        return old.state === now.state && old.reason === now.reason && old.identity === now.identity ? old : now;
      });
    update();
    return client.onState(update);
  }, [client]);
  return value;
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

export interface UsePresence {
  /** The members of the instance (this connection included), or null before the first answer. */
  members: PresenceMember[] | null;
  /** Why the last query was refused (an `RpcError`: `not_found`, `unauthorized`…), or null. */
  error: unknown;
}

/**
 * The members of a presence channel instance (SPEC 11.2) while the
 * component is mounted, kept up to date: asked when the subscription is
 * acked (again after every reconnect, since joins and leaves are not
 * replayed), then changed by each join and leave, and replaced by a list
 * the hub pushes after its own Redis link loss. Joins and leaves that
 * arrive while a query is in flight are applied again to its answer.
 */
export function usePresence(name: string, params?: ParamsInput): UsePresence {
  const client = useHub();
  const key = canonicalKey(name, params);
  const [value, setValue] = useState<{ k: string; v: UsePresence } | null>(null);
  useEffect(() => {
    const ch = client.channel(name, params);
    let members: Map<string, PresenceMember> | null = null;
    let during: [boolean, PresenceMember][] | null = null; // events while a query is in flight
    let asked = 0;
    let live = true;
    const show = (error: unknown = null): void => {
      if (live) setValue({ k: key, v: { members: members && [...members.values()], error } });
    };
    const apply = (join: boolean, m: PresenceMember): void => {
      if (during) during.push([join, m]);
      if (!members) return;
      if (join) members.set(m.conn, m);
      else members.delete(m.conn);
      show();
    };
    const ask = (): void => {
      const mine = ++asked;
      during = [];
      ch.presence().then(
        (list) => {
          if (!live || mine !== asked) return;
          members = new Map(list.map((m) => [m.conn, m]));
          for (const [join, m] of during ?? []) {
            if (join) members.set(m.conn, m);
            else members.delete(m.conn);
          }
          during = null;
          show();
        },
        (e: unknown) => {
          if (!live || mine !== asked) return;
          during = null;
          // asked before the subscription was made: the ack asks again
          if ((e as { code?: unknown }).code !== 'forbidden') show(e);
        },
      );
    };
    ch.onJoin((m) => apply(true, m));
    ch.onLeave((m) => apply(false, m));
    ch.onMembers((list) => {
      members = new Map(list.map((m) => [m.conn, m]));
      show();
    });
    const off = client.onFrame((f) => {
      if (f['subscribed'] === true && f['channel'] === name && canonicalKey(name, f['params'] as ParamsInput) === key) ask();
    });
    ask();
    return () => {
      live = false;
      off();
      ch.close();
    };
  }, [client, key]);
  return value?.k === key ? value.v : { members: null, error: null };
}

/** The versions a context response was read at (SPEC 10.1), for `since`. */
export { versionFrom } from './version.js';
export type { VersionSource } from './version.js';
