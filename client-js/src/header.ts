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
  const c = s.codePointAt(i) as number;
  if (c > 0x7f) return `U+${c.toString(16).toUpperCase().padStart(4, '0')} (non-ASCII must be percent-encoded)`;
  if (c < 0x21 || c === 0x7f) return `byte 0x${c.toString(16).padStart(2, '0')}`;
  return JSON.stringify(s.charAt(i));
}

/** One decoding pass over a header value. */
class HeaderDecoder {
  private readonly out: InvalidationList = [];

  constructor(private readonly s: string) {}

  private fail(code: ErrorCode, i: number, detail: string): never {
    throw new ProtocolError(code, detail, { pos: utf8Length(this.s.slice(0, i)) });
  }

  private unexpected(i: number, wanted: string): never {
    this.fail('bad_header', i, `expected ${wanted}, found ${describeAt(this.s, i)}`);
  }

  private at(i: number): number {
    return this.s.charCodeAt(i); // NaN past the end: equal to nothing
  }

  private skipOws(i: number): number {
    while (i < this.s.length && (this.at(i) === SP || this.at(i) === HTAB)) i++;
    return i;
  }

  /** Scans `name` or `value` from `i`: returns where it ends and its percent-decoded bytes. */
  private token(i: number): [number, Uint8Array] {
    const bytes: number[] = [];
    for (;;) {
      const c = this.at(i);
      if (isTchar(c)) {
        bytes.push(c);
        i++;
      } else if (c === PERCENT) {
        const h = this.at(i + 1);
        const l = this.at(i + 2);
        if (!isHexDigit(h) || !isHexDigit(l)) this.fail('bad_header', i, '"%" is not followed by two hex digits');
        bytes.push(hexValue(h) * 16 + hexValue(l));
        i += 3;
      } else {
        return [i, Uint8Array.from(bytes)];
      }
    }
  }

  private name(start: number, end: number, bytes: Uint8Array, max: number, what: string): string {
    const text = decodeUtf8(bytes);
    if (text === null) this.fail('bad_name', start, `${what} is not valid UTF-8 once percent-decoded`);
    const problem = nameProblem(text, max);
    if (problem !== null) this.fail('bad_name', start, `${what} ${JSON.stringify(this.s.slice(start, end))} ${problem}`);
    return text;
  }

  private value(start: number, bytes: Uint8Array): string {
    const text = decodeUtf8(bytes);
    if (text === null) this.fail('bad_param', start, 'param value is not valid UTF-8 once percent-decoded');
    const problem = valueProblem(text, LIMITS.value);
    if (problem !== null) this.fail('bad_param', start, `param value ${problem}`);
    return text;
  }

  /** element = name [ OWS ";" [ OWS param *( OWS ";" OWS param ) ] ]; returns where it ends. */
  private element(start: number): number {
    const [nameEnd, nameBytes] = this.token(start);
    if (nameEnd === start) this.unexpected(start, 'a context name');
    const context = this.name(start, nameEnd, nameBytes, LIMITS.name, 'context name');

    const semi = this.skipOws(nameEnd);
    if (this.at(semi) !== SEMI) {
      this.out.push(context);
      return nameEnd;
    }
    let i = this.skipOws(semi + 1);
    const params: Params = {};
    if (i >= this.s.length || this.at(i) === COMMA) {
      this.out.push({ context, params }); // `name;`: scoped, no params
      return i;
    }
    const seen = new Set<string>();
    for (;;) {
      // param = name OWS "=" OWS value
      const [pEnd, pBytes] = this.token(i);
      if (pEnd === i) this.unexpected(i, 'a param name');
      const pname = this.name(i, pEnd, pBytes, LIMITS.paramName, 'param name');
      if (seen.has(pname)) this.fail('bad_header', i, `param ${JSON.stringify(pname)} is given twice`);
      if (seen.size === LIMITS.params) this.fail('too_large', i, `more than ${LIMITS.params} params`);
      seen.add(pname);
      const eq = this.skipOws(pEnd);
      if (this.at(eq) !== EQUALS) this.unexpected(eq, '"="');
      const vStart = this.skipOws(eq + 1);
      const [vEnd, vBytes] = this.token(vStart);
      put(params, pname, this.value(vStart, vBytes));
      const next = this.skipOws(vEnd);
      if (this.at(next) !== SEMI) {
        this.out.push({ context, params });
        return vEnd;
      }
      i = this.skipOws(next + 1);
    }
  }

  /** header = OWS [ element ] *( OWS "," OWS [ element ] ) OWS */
  decode(): InvalidationList {
    const n = this.s.length;
    let i = 0;
    for (;;) {
      i = this.skipOws(i);
      if (i >= n) break;
      if (this.at(i) === COMMA) {
        i++; // empty element
        continue;
      }
      if (this.out.length === LIMITS.entries) this.fail('too_large', i, `more than ${LIMITS.entries} entries`);
      i = this.skipOws(this.element(i));
      if (i >= n) break;
      if (this.at(i) !== COMMA) this.unexpected(i, '"," or the end of the value');
      i++;
    }
    return this.out;
  }
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
  return new HeaderDecoder(s).decode();
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
