/**
 * Invalidation entries and lists, JSON form (SPEC section 2).
 */

import { errorAt } from './errors.js';
import { LIMITS, checkName, isPlainObject, normalizeParams, own } from './values.js';
import type { Params, ParamsInput } from './values.js';

/** A scoped entry, normalized: `params` may be `{}` and is then still scoped. */
export interface ScopedEntry {
  context: string;
  params: Params;
}

/** A normalized entry: a context name (unscoped) or a scoped entry. */
export type Entry = string | ScopedEntry;

/** A normalized invalidation list: order and duplicates kept. */
export type InvalidationList = Entry[];

/** An entry as callers write it: param values in any JSON scalar form, `params` optional. */
export type EntryInput = string | { readonly context: string; readonly params?: ParamsInput | undefined };

/** A (context, params) pair: a subscription's scope. */
export interface Scope {
  readonly context: string;
  readonly params?: ParamsInput | undefined;
}

/** A normalized scope. */
export interface NormalizedScope {
  context: string;
  params: Params;
}

/**
 * Normalizes one entry found at `path`. A `params` that is `undefined`
 * counts as absent, as `JSON.stringify` would drop it.
 */
export function decodeEntryAt(v: unknown, path: string): Entry {
  if (typeof v === 'string') return checkName(v, path, 'context');
  if (!isPlainObject(v)) {
    throw errorAt('bad_invalidation', path, 'an entry is a name or {"context", "params"}');
  }
  const context = own(v, 'context');
  if (typeof context !== 'string') {
    throw errorAt('bad_invalidation', `${path}/context`, 'a scoped entry needs a string "context"');
  }
  checkName(context, `${path}/context`, 'context');
  const p = own(v, 'params');
  if (p === undefined) return { context, params: {} };
  if (!isPlainObject(p)) throw errorAt('bad_invalidation', `${path}/params`, '"params" is not an object');
  return { context, params: normalizeParams(p, `${path}/params`) };
}

/** Normalizes a list found at `path` (`""` for the root). */
export function decodeInvalidationAt(value: unknown, path: string): InvalidationList {
  if (!Array.isArray(value)) throw errorAt('bad_invalidation', path, 'an invalidation list is a JSON array');
  if (value.length > LIMITS.entries) {
    throw errorAt('too_large', path, `${value.length} entries, over ${LIMITS.entries}`);
  }
  const out: InvalidationList = [];
  // An index loop, not map(): holes of sparse arrays are entries too (and invalid).
  for (let i = 0; i < value.length; i++) out.push(decodeEntryAt(value[i], `${path}/${i}`));
  return out;
}

/**
 * Decodes an invalidation list (SPEC section 2) into its normalized form:
 * unscoped entries as strings, scoped ones as `{context, params}` with every
 * value in its string form, order and duplicates kept.
 *
 * Throws a `ProtocolError` with a JSON-pointer-like `path`:
 * `bad_invalidation` (wrong shape), `bad_name`, `bad_param`, `too_large`.
 */
export function decodeInvalidation(value: unknown): InvalidationList {
  return decodeInvalidationAt(value, '');
}

/** Normalizes a scope found at `path`; `params` absent or undefined is `{}`. */
export function normalizeScopeAt(scope: unknown, path: string): NormalizedScope {
  if (!isPlainObject(scope)) throw errorAt('bad_invalidation', path, 'a scope is {"context", "params"}');
  return decodeEntryAt(scope, path) as NormalizedScope; // an object decodes as a scoped entry
}
