/**
 * The versions a context response was read at (SPEC section 10.1): the
 * `X-Mizan-Version` header, `todos;v=k2f9a00q1:42, user;v=0:0` (the
 * `X-Mizan-Invalidate` grammar, one element per context with one param
 * `v`), or the same string under `mizan_version` in data embedded by
 * server-side rendering. Pass a context's version as `since` when
 * subscribing: the first ack then needs no refetch.
 */

import { errorAt } from './errors.js';
import type { HeadersLike } from './from.js';
import { decodeHeader } from './header.js';

export const VERSION_HEADER = 'X-Mizan-Version';

/** Where versions come from: a header value, `Headers`, a `Response`, or embedded data (`{mizan_version}`). */
export type VersionSource = string | HeadersLike | { readonly headers: HeadersLike } | { readonly mizan_version?: unknown; readonly [member: string]: unknown };

const VERSION = /^[0-9a-z]{1,32}:(0|[1-9]\d{0,15})$/;

const getter = (v: unknown): v is HeadersLike => typeof (v as HeadersLike | null)?.get === 'function';

/**
 * `{context: version}` of a response or embedded data; `{}` when it carries
 * none. A context listed twice with different versions is `"0:0"` (unknown).
 * Throws a `ProtocolError` (`bad_header`, with `pos` for section 5 errors)
 * for a value SPEC 10.1 does not allow.
 *
 *     const r = await fetch('/api/mizan/ctx/todos/');
 *     client.subscribe('todos', {}, refetch, { since: versionFrom(r)['todos'] });
 */
export function versionFrom(source: VersionSource): { [context: string]: string } {
  const s = source as { headers?: unknown; mizan_version?: unknown };
  const value: unknown =
    typeof source === 'string'
      ? source
      : getter(source)
        ? source.get(VERSION_HEADER)
        : getter(s.headers)
          ? s.headers.get(VERSION_HEADER)
          : s.mizan_version;
  const out: { [context: string]: string } = Object.create(null) as { [context: string]: string };
  if (value === null || value === undefined) return out;
  if (typeof value !== 'string') throw errorAt('bad_header', null, 'mizan_version: not a string');
  for (const e of decodeHeader(value)) {
    const p = typeof e === 'string' ? null : e.params;
    const v = p?.['v'];
    if (typeof e === 'string' || Object.keys(p ?? {}).length !== 1 || v === undefined || !VERSION.test(v))
      throw errorAt('bad_header', null, `${typeof e === 'string' ? e : e.context}: an element is a context with exactly one param v=E:N`);
    const old = out[e.context];
    out[e.context] = old === undefined || old === v ? v : '0:0';
  }
  return out;
}
