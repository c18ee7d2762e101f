/**
 * Text helpers: UTF-8 lengths, code-point order, the canonical JSON string
 * form, percent-encoding, JSON-pointer tokens. No I/O, no state.
 */

const encoder = /* @__PURE__ */ new TextEncoder();
const decoder = /* @__PURE__ */ new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isLead(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function isTrail(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/**
 * Scans `s` once: its UTF-8 length in bytes, or -1 when it is not Unicode
 * text (a lone surrogate). `controls` also rejects (-2) U+0000-U+001F and
 * U+007F, the characters SPEC section 1 forbids in names.
 */
function scan(s: string, controls: boolean): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (controls && (c < 0x20 || c === 0x7f)) return -2;
      bytes += 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (isLead(c) && i + 1 < s.length && isTrail(s.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else if (isLead(c) || isTrail(c)) {
      return -1;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

/** Length in bytes of the UTF-8 encoding of `s` (a lone surrogate counts as the 3 bytes of U+FFFD, as `TextEncoder` writes it). */
export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/** Why `s` is not a name of 1 to `max` bytes (SPEC section 1), or null when it is one. */
export function nameProblem(s: string, max: number): string | null {
  if (s.length === 0) return 'is empty';
  const n = scan(s, true);
  if (n === -2) return 'contains a control character';
  if (n === -1) return 'contains a lone surrogate';
  if (n > max) return `is ${n} bytes, over ${max}`;
  return null;
}

/** Why `s` is not a param value's string form of at most `max` bytes, or null. */
export function valueProblem(s: string, max: number): string | null {
  if (s.indexOf('\u0000') >= 0) return 'contains U+0000';
  const n = scan(s, false);
  if (n === -1) return 'contains a lone surrogate';
  if (n > max) return `is ${n} bytes, over ${max}`;
  return null;
}

/** Maps UTF-16 code units so that comparing them orders strings by code point. */
function codePointRank(u: number): number {
  if (u < 0xd800) return u;
  return u >= 0xe000 ? u - 0x800 : u + 0x2000;
}

/**
 * Orders strings by code point, which is the order of their UTF-8 bytes
 * (SPEC section 3). Unlike the default `Array.prototype.sort` (UTF-16 code
 * units) it puts U+1F600 after U+FFFD, and unlike `localeCompare` it knows
 * no locale.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

const SHORT_ESCAPES: { readonly [c: number]: string } = {
  0x08: '\\b',
  0x09: '\\t',
  0x0a: '\\n',
  0x0c: '\\f',
  0x0d: '\\r',
  0x22: '\\"',
  0x5c: '\\\\',
};

/**
 * `s` as a JSON string in the canonical form of SPEC section 3: `"`, `\` and
 * the characters below U+0020 escaped (short escapes where JSON has them,
 * else `\u00xx` in lower case), everything else as is.
 */
export function jsonQuote(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    out += SHORT_ESCAPES[c] ?? '\\u00' + (c < 0x10 ? '0' : '') + c.toString(16);
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}

const HEX_UPPER = '0123456789ABCDEF';

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || // 0-9
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f || // _
    b === 0x7e // ~
  );
}

/** Percent-encodes the UTF-8 bytes of `s`, all but `A-Z a-z 0-9 - . _ ~`, in upper-case hex. */
export function percentEncode(s: string): string {
  let out = '';
  for (const b of encoder.encode(s)) {
    out += isUnreserved(b)
      ? String.fromCharCode(b)
      : '%' + HEX_UPPER.charAt(b >> 4) + HEX_UPPER.charAt(b & 15);
  }
  return out;
}

/**
 * Decodes UTF-8 strictly: null for any malformed sequence (overlong forms,
 * encoded surrogates, truncation). A leading U+FEFF is kept, not dropped.
 */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

/** The UTF-8 bytes of `s`. */
export function encodeUtf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** `name` as one JSON-pointer reference token (RFC 6901): `~` → `~0`, `/` → `~1`. */
export function pointerToken(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}
