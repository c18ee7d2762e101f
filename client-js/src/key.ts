/**
 * Canonical keys, buckets (SPEC section 3) and matching (SPEC section 4).
 */

import { decodeEntryAt, normalizeScopeAt } from './invalidation.js';
import type { Entry, EntryInput, Scope } from './invalidation.js';
import { compareCodePoints, encodeUtf8, jsonQuote } from './text.js';
import type { Params, ParamsInput } from './values.js';

/** Number of version buckets per context (SPEC section 10). */
export const BUCKETS = 1024;

/**
 * The names of normalized params in canonical order: by code point, which is
 * UTF-8 byte order. Never `Object.keys` order (integer-like names first) nor
 * the default sort (UTF-16) nor `localeCompare`.
 */
export function canonicalNames(params: Params): string[] {
  return Object.keys(params).sort(compareCodePoints);
}

/** The canonical key text of an already normalized scope. */
export function keyOf(context: string, params: Params): string {
  let out = '[' + jsonQuote(context) + ',{';
  let first = true;
  for (const name of canonicalNames(params)) {
    if (!first) out += ',';
    first = false;
    out += jsonQuote(name) + ':' + jsonQuote(params[name] as string);
  }
  return out + '}]';
}

/**
 * The canonical key of (context, params) (SPEC section 3): the compact JSON
 * text `["user",{"user_id":"5"}]`, params sorted by UTF-8 bytes, values in
 * their string form, non-ASCII as is.
 *
 * Throws a `ProtocolError` (`bad_name`, `bad_param`, `too_large`; paths
 * `/context`, `/params/NAME`) when the scope breaks SPEC section 1.
 */
export function canonicalKey(context: string, params?: ParamsInput): string {
  const s = normalizeScopeAt({ context, params }, '');
  return keyOf(s.context, s.params);
}

/** FNV-1a, 32 bits, of `data` (a string stands for its UTF-8 bytes). */
export function fnv1a32(data: string | Uint8Array): number {
  const bytes = typeof data === 'string' ? encodeUtf8(data) : data;
  let h = 0x811c9dc5; // 2166136261
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0; // 16777619
  }
  return h >>> 0;
}

/** The version bucket of a canonical key: `fnv1a32(key bytes) mod 1024`. */
export function bucket(key: string): number {
  return fnv1a32(key) % BUCKETS;
}

/**
 * Whether an invalidation entry matches a subscription (SPEC section 4): same
 * context (exact), and either the entry is unscoped or every param it names
 * is in the subscription with the same string value. A scoped entry with
 * `{}` params matches every subscription of its context.
 *
 * Both sides are normalized first (`5`, `5.0` and `"5"` are one value);
 * invalid input throws a `ProtocolError` with a path under `/entry` or
 * `/subscription`.
 */
export function matches(entry: Entry | EntryInput, subscription: Scope): boolean {
  const e = decodeEntryAt(entry, '/entry');
  const s = normalizeScopeAt(subscription, '/subscription');
  if (typeof e === 'string') return e === s.context;
  if (e.context !== s.context) return false;
  for (const name of Object.keys(e.params)) {
    if (!Object.prototype.hasOwnProperty.call(s.params, name)) return false;
    if (s.params[name] !== e.params[name]) return false;
  }
  return true;
}
