/**
 * Values, names and params (SPEC section 1) and the limits of section 14.
 */

import { ProtocolError, errorAt } from './errors.js';
import { compareCodePoints, nameProblem, pointerToken, valueProblem } from './text.js';

/** The limits of SPEC section 14 that the codecs enforce. */
export const LIMITS = Object.freeze({
  /** context, channel and rpc function names, in bytes */
  name: 128,
  /** param names, in bytes */
  paramName: 64,
  /** a param value's string form, in bytes */
  value: 256,
  /** params per entry or subscription */
  params: 16,
  /** entries per invalidation list */
  entries: 256,
  /** an `X-Mizan-Invalidate` value, in bytes */
  header: 8192,
  /** `token` of auth, refresh and subscribe frames, in bytes */
  token: 8192,
  /** `since` of subscribe frames, in bytes */
  since: 128,
  /** `ref` and rpc `id` strings, in bytes */
  ref: 64,
  /** JSON nesting of a frame or envelope, in levels */
  depth: 64,
  /** `reason` of a close envelope, in bytes */
  closeReason: 123,
});

/** A param value as JSON carries it. */
export type ParamValue = string | number | boolean | null;

/** Params as callers give them: values in any JSON scalar form. */
export interface ParamsInput {
  readonly [name: string]: ParamValue;
}

/** Normalized params: every value in its string form. */
export interface Params {
  [name: string]: string;
}

/** True for objects that are JSON objects: not null, not arrays, not Dates, Maps or the like. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.prototype.toString.call(v) === '[object Object]'
  );
}

/** `o`'s own property `key`, or undefined. Inherited properties (`constructor`, ...) never count. */
export function own(o: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

/**
 * Sets `o[key] = value` as an own data property, `__proto__` included
 * (plain assignment would replace the prototype instead).
 */
export function put<T>(o: { [key: string]: T }, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    o[key] = value;
  }
}

/** The string form of a JSON scalar, or undefined when `v` is not one. */
function stringForm(v: unknown): string | undefined {
  // Numbers: ECMAScript Number::toString, which is String(); String(-0) is "0".
  const t = typeof v;
  return t === 'string' || t === 'boolean' || v === null || (t === 'number' && Number.isFinite(v))
    ? String(v)
    : undefined;
}

function describe(v: unknown): string {
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : typeof v === 'number' ? String(v) : `a ${typeof v}`;
}

/**
 * The string form of a param value (SPEC section 1): strings as they are,
 * numbers as ECMAScript's `String()` writes them (`5.0` → `"5"`, `-0` → `"0"`,
 * `1e21` → `"1e+21"`), `true`/`false`/`null` as those words.
 *
 * Throws `bad_param` (path `""`) for objects, arrays and anything that is not
 * a JSON scalar (`undefined`, `NaN`, a bigint...). The length and U+0000
 * rules apply where values are decoded, not here.
 */
export function valueString(v: unknown): string {
  const s = stringForm(v);
  if (s === undefined) {
    throw new ProtocolError('bad_param', `${describe(v)} is not allowed as a param value`, { path: '' });
  }
  return s;
}

/** Checks a context, channel or rpc function name; throws `bad_name` at `path` (none if null). */
export function checkName(name: string, path: string | null, what: string): string {
  const problem = nameProblem(name, LIMITS.name);
  if (problem !== null) throw errorAt('bad_name', path, `${what} ${JSON.stringify(name)} ${problem}`);
  return name;
}

/**
 * Normalizes a params object: at most 16 names (`too_large`), each a valid
 * param name (`bad_name`), each value a JSON scalar whose string form is at
 * most 256 bytes without U+0000 (`bad_param`). Errors carry paths under
 * `path`, or no place when `path` is null.
 */
export function normalizeParams(p: Record<string, unknown>, path: string | null): Params {
  const names = Object.keys(p);
  if (names.length > LIMITS.params) {
    throw errorAt('too_large', path, `${names.length} params, over ${LIMITS.params}`);
  }
  // SPEC 1: checked in canonical order, not JavaScript's key order (which puts
  // integer-like names first), so the first bad param is the same everywhere;
  // the result keeps the object's own order.
  const forms = new Map<string, string>();
  for (const name of [...names].sort(compareCodePoints)) {
    const at = path === null ? null : `${path}/${pointerToken(name)}`;
    const label = `param ${JSON.stringify(name)}`;
    const np = nameProblem(name, LIMITS.paramName);
    if (np !== null) throw errorAt('bad_name', at, `${label}: the name ${np}`);
    const v = p[name];
    const s = stringForm(v);
    if (s === undefined) throw errorAt('bad_param', at, `${label}: ${describe(v)} is not allowed as a param value`);
    const vp = valueProblem(s, LIMITS.value);
    if (vp !== null) throw errorAt('bad_param', at, `${label}: the value ${vp}`);
    forms.set(name, s);
  }
  const out: Params = {};
  for (const name of names) put(out, name, forms.get(name) as string);
  return out;
}
