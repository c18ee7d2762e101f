/**
 * The `X-Mizan-Invalidate` header (SPEC section 5).
 *
 * The value is ASCII: a raw byte outside %x21-7E other than OWS is an error,
 * non-ASCII must be percent-encoded. Every character before an error's
 * position has been scanned and is ASCII, so string indexes are byte offsets;
 * `pos` is computed as a UTF-8 offset all the same.
 */

import { ProtocolError } from './errors.js';
import type { ErrorCode } from './errors.js';
import { decodeInvalidation } from './invalidation.js';
import type { InvalidationList } from './invalidation.js';
import { canonicalNames } from './key.js';
import { decodeUtf8, nameProblem, percentEncode, utf8Length, valueProblem } from './text.js';
import { LIMITS, put } from './values.js';
import type { Params } from './values.js';

/** The header's name, as HTTP APIs take it (case-insensitive on the wire). */
export const INVALIDATE_HEADER = 'X-Mizan-Invalidate';

const SP = 0x20;
const HTAB = 0x09;
const PERCENT = 0x25;
const COMMA = 0x2c;
const SEMI = 0x3b;
const EQUALS = 0x3d;

/** tchar without pct-encoded: visible ASCII except `%` `,` `;` `=`. */
function isTchar(c: number): boolean {
  return c >= 0x21 && c <= 0x7e && c !== PERCENT && c !== COMMA && c !== SEMI && c !== EQUALS;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

function describeAt(s: string, i: number): string {
  if (i >= s.length) return 'the end of the value';
  return s.charCodeAt(i) > 0x7e ? 'non-ASCII (percent-encode it)' : JSON.stringify(s.charAt(i));
}

/**
 * One decoding pass over a header value. Closures rather than a class:
 * locals minify, method names do not (the core bundle has a size budget).
 */
function decodePass(s: string): InvalidationList {
  const out: InvalidationList = [];
  const n = s.length;
  const at = (i: number): number => s.charCodeAt(i); // NaN past the end: equal to nothing

  const fail = (code: ErrorCode, i: number, detail: string): never => {
    throw new ProtocolError(code, detail, { pos: utf8Length(s.slice(0, i)) });
  };

  const unexpected = (i: number, wanted: string): never => fail('bad_header', i, `expected ${wanted}, found ${describeAt(s, i)}`);

  const skipOws = (i: number): number => {
    while (at(i) === SP || at(i) === HTAB) i++;
    return i;
  };

  /** Scans `name` or `value` from `i`: returns where it ends and its percent-decoded bytes. */
  const token = (i: number): [number, Uint8Array] => {
    const bytes: number[] = [];
    for (;;) {
      const c = at(i);
      if (isTchar(c)) {
        bytes.push(c);
        i++;
      } else if (c === PERCENT) {
        const h = at(i + 1);
        const l = at(i + 2);
        if (!isHexDigit(h) || !isHexDigit(l)) fail('bad_header', i, 'bad "%" escape');
        bytes.push(hexValue(h) * 16 + hexValue(l));
        i += 3;
      } else {
        return [i, Uint8Array.from(bytes)];
      }
    }
  };

  /** A name token at `start`; returns the decoded name and where it ends. */
  const name = (start: number, max: number, what: string): [string, number] => {
    const [end, bytes] = token(start);
    if (end === start) unexpected(start, `a ${what}`);
    const text = decodeUtf8(bytes);
    if (text === null) return fail('bad_name', start, `${what}: invalid UTF-8`);
    const problem = nameProblem(text, max);
    if (problem !== null) fail('bad_name', start, `${what} ${JSON.stringify(s.slice(start, end))} ${problem}`);
    return [text, end];
  };

  const value = (start: number, bytes: Uint8Array): string => {
    const text = decodeUtf8(bytes);
    if (text === null) return fail('bad_param', start, 'param value: invalid UTF-8');
    const problem = valueProblem(text, LIMITS.value);
    if (problem !== null) fail('bad_param', start, `param value ${problem}`);
    return text;
  };

  /** element = name [ OWS ";" [ OWS param *( OWS ";" OWS param ) ] ]; returns where it ends. */
  const element = (start: number): number => {
    const [context, nameEnd] = name(start, LIMITS.name, 'context name');
    const semi = skipOws(nameEnd);
    if (at(semi) !== SEMI) {
      out.push(context);
      return nameEnd;
    }
    let i = skipOws(semi + 1);
    const params: Params = {};
    if (i >= n || at(i) === COMMA) {
      out.push({ context, params }); // `name;`: scoped, no params
      return i;
    }
    const seen = new Set<string>();
    for (;;) {
      // param = name OWS "=" OWS value
      const [pname, pEnd] = name(i, LIMITS.paramName, 'param name');
      if (seen.has(pname)) fail('bad_header', i, `param ${JSON.stringify(pname)} is given twice`);
      if (seen.size === LIMITS.params) fail('too_large', i, `more than ${LIMITS.params} params`);
      seen.add(pname);
      const eq = skipOws(pEnd);
      if (at(eq) !== EQUALS) unexpected(eq, '"="');
      const vStart = skipOws(eq + 1);
      const [vEnd, vBytes] = token(vStart);
      put(params, pname, value(vStart, vBytes));
      const next = skipOws(vEnd);
      if (at(next) !== SEMI) {
        out.push({ context, params });
        return vEnd;
      }
      i = skipOws(next + 1);
    }
  };

  // header = OWS [ element ] *( OWS "," OWS [ element ] ) OWS
  let i = 0;
  for (;;) {
    i = skipOws(i);
    if (i >= n) break;
    if (at(i) === COMMA) {
      i++; // empty element
      continue;
    }
    if (out.length === LIMITS.entries) fail('too_large', i, `more than ${LIMITS.entries} entries`);
    i = skipOws(element(i));
    if (i >= n) break;
    if (at(i) !== COMMA) unexpected(i, '"," or the end of the value');
    i++;
  }
  return out;
}

/**
 * Decodes an `X-Mizan-Invalidate` value into the normalized list (SPEC
 * section 5): `user;user_id=5, notifications` →
 * `[{"context":"user","params":{"user_id":"5"}},"notifications"]`.
 *
 * Throws a `ProtocolError` whose `pos` is the 0-based byte offset of the
 * offending token: `bad_header` (syntax, raw non-ASCII, a bad `%` escape, a
 * duplicate param), `bad_name` / `bad_param` (the decoded text breaks SPEC
 * section 1, invalid UTF-8 included), `too_large` (over 8192 bytes, 16
 * params or 256 entries).
 */
export function decodeHeader(s: string): InvalidationList {
  if (typeof s !== 'string') throw new ProtocolError('bad_header', 'the header value is not a string', { pos: 0 });
  if (utf8Length(s) > LIMITS.header) {
    throw new ProtocolError('too_large', `the header value is over ${LIMITS.header} bytes`, { pos: LIMITS.header });
  }
  return decodePass(s);
}

/**
 * Encodes an invalidation list (any form `decodeInvalidation` takes) as an
 * `X-Mizan-Invalidate` value: elements joined by `", "`, params in canonical
 * order joined by `;`, names and values percent-encoded byte by byte except
 * `A-Z a-z 0-9 - . _ ~` (upper-case hex); a scoped entry with no params is
 * `name;`.
 *
 * Throws what `decodeInvalidation` throws, and `too_large` (path `""`) when
 * the value would be over 8192 bytes: use the JSON body then.
 */
export function encodeHeader(list: unknown): string {
  const parts: string[] = [];
  for (const entry of decodeInvalidation(list)) {
    if (typeof entry === 'string') {
      parts.push(percentEncode(entry));
      continue;
    }
    const params = canonicalNames(entry.params).map(
      (name) => `${percentEncode(name)}=${percentEncode(entry.params[name] as string)}`,
    );
    parts.push(`${percentEncode(entry.context)};${params.join(';')}`);
  }
  const header = parts.join(', ');
  if (header.length > LIMITS.header) {
    throw new ProtocolError('too_large', `the header value would be ${header.length} bytes, over ${LIMITS.header}`, {
      path: '',
    });
  }
  return header;
}
