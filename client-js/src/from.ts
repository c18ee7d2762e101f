/**
 * One entry point for every way invalidations reach the browser: a mutation
 * response's JSON body, its `X-Mizan-Invalidate` header, and a pushed
 * `invalidate` frame (which has the body's shape, SPEC section 8).
 */

import { errorAt } from './errors.js';
import { INVALIDATE_HEADER, decodeHeader } from './header.js';
import { decodeInvalidationAt } from './invalidation.js';
import type { InvalidationList } from './invalidation.js';
import { isPlainObject, own } from './values.js';

/** What `fetch`'s `Headers` offers: `get` returns repeated fields joined by ", ". */
export interface HeadersLike {
  get(name: string): string | null;
}

/** A mutation response body or a pushed frame: `{"invalidate": [...], ...}`; other members are ignored. */
export interface InvalidationBody {
  readonly invalidate?: unknown;
  readonly [member: string]: unknown;
}

/** Where invalidations come from: a header value, a response's headers, or a body/frame. */
export type InvalidationSource = string | HeadersLike | InvalidationBody;

function isHeadersLike(v: unknown): v is HeadersLike {
  return typeof v === 'object' && v !== null && typeof (v as { get?: unknown }).get === 'function';
}

/**
 * The normalized invalidation list carried by `source`:
 *
 * - a string is an `X-Mizan-Invalidate` value (`decodeHeader`);
 * - an object with a `get` method (`Headers`) is asked for
 *   `X-Mizan-Invalidate`; no such header is the empty list;
 * - any other plain object is a response body or a pushed frame: its
 *   `invalidate` member is decoded (`decodeInvalidation`, error paths under
 *   `/invalidate`); no `invalidate` member is the empty list, other members
 *   (`result`, `versions`, `reason`, ...) are ignored.
 *
 * Throws a `ProtocolError` as those decoders do; anything else as `source`
 * is `bad_invalidation` (path `""`).
 */
export function invalidationsFrom(source: InvalidationSource): InvalidationList {
  if (typeof source === 'string') return decodeHeader(source);
  if (isHeadersLike(source)) {
    const value = source.get(INVALIDATE_HEADER);
    return value === null || value === undefined ? [] : decodeHeader(value);
  }
  if (isPlainObject(source)) {
    const list = own(source, 'invalidate');
    return list === undefined ? [] : decodeInvalidationAt(list, '/invalidate');
  }
  throw errorAt('bad_invalidation', '', 'expected a header value, a Headers object or a {"invalidate": [...]} body');
}
