/**
 * A strict JSON parser for frames and envelopes (RFC 8259 plus SPEC section 1).
 *
 * `JSON.parse` is not enough: it accepts escaped lone surrogates (`"\ud800"`)
 * and turns `1e400` into `Infinity`, both `bad_json` here, and it has no
 * nesting limit (over 64 levels is `too_large`). Duplicate keys: the last one
 * wins, as with `JSON.parse`.
 */

import { ProtocolError } from './errors.js';
import { put } from './values.js';

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** True for JSON objects (not arrays, not null). */
export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own member `key` of a JSON object, or undefined (inherited names such as `constructor` never count). */
export function member(o: JsonObject, key: string): JsonValue | undefined {
  return Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
}

/**
 * Whether `v` is an *integer* as SPEC section 7 defines it: a number with an
 * integral value of magnitude at most 2^53 - 1 (`1.0` is the integer 1).
 */
export function isInteger(v: JsonValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const ESCAPES: { readonly [c: number]: string } = {
  0x22: '"',
  0x5c: '\\',
  0x2f: '/',
  0x62: '\b',
  0x66: '\f',
  0x6e: '\n',
  0x72: '\r',
  0x74: '\t',
};

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function hex4(s: string, i: number): number {
  if (i + 4 > s.length) return -1;
  let v = 0;
  for (let k = i; k < i + 4; k++) {
    const c = s.charCodeAt(k);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
  ) {}

  private fail(what: string): never {
    throw new ProtocolError('bad_json', `${what} at character ${this.i}`);
  }

  private at(i: number): number {
    return this.s.charCodeAt(i);
  }

  private ws(): void {
    for (;;) {
      const c = this.at(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else return;
    }
  }

  private enter(): void {
    if (++this.depth > this.maxDepth) {
      throw new ProtocolError('too_large', `JSON nested deeper than ${this.maxDepth} levels`);
    }
  }

  document(): JsonValue {
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.fail('unexpected text after the JSON value');
    return v;
  }

  private value(): JsonValue {
    this.ws();
    const c = this.at(this.i);
    switch (c) {
      case 0x7b: // {
        return this.object();
      case 0x5b: // [
        return this.array();
      case QUOTE:
        return this.string();
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || isDigit(c)) return this.number();
        return this.fail(this.i >= this.s.length ? 'unexpected end of text' : 'unexpected character');
    }
  }

  private literal<T extends JsonValue>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail('unexpected character');
    this.i += word.length;
    return v;
  }

  private object(): JsonObject {
    this.enter();
    this.i++; // {
    const obj: JsonObject = {};
    this.ws();
    if (this.at(this.i) === 0x7d) {
      this.i++;
      this.depth--;
      return obj;
    }
    for (;;) {
      this.ws();
      if (this.at(this.i) !== QUOTE) this.fail('expected a string key');
      const key = this.string();
      this.ws();
      if (this.at(this.i) !== 0x3a) this.fail('expected ":"');
      this.i++;
      put(obj, key, this.value()); // a duplicate key: the last one wins
      this.ws();
      const c = this.at(this.i);
      this.i++;
      if (c === 0x2c) continue;
      if (c === 0x7d) break;
      this.i--;
      this.fail('expected "," or "}"');
    }
    this.depth--;
    return obj;
  }

  private array(): JsonValue[] {
    this.enter();
    this.i++; // [
    const arr: JsonValue[] = [];
    this.ws();
    if (this.at(this.i) === 0x5d) {
      this.i++;
      this.depth--;
      return arr;
    }
    for (;;) {
      arr.push(this.value());
      this.ws();
      const c = this.at(this.i);
      this.i++;
      if (c === 0x2c) continue;
      if (c === 0x5d) break;
      this.i--;
      this.fail('expected "," or "]"');
    }
    this.depth--;
    return arr;
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string');
      const c = this.at(this.i);
      if (c === QUOTE) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c === BACKSLASH) {
        out += s.slice(start, this.i);
        out += this.escape();
        start = this.i;
      } else if (c < 0x20) {
        this.fail('control character in a string');
      } else if (c >= 0xd800 && c <= 0xdfff) {
        // Raw surrogates: only as a pair (the text must be Unicode scalar values).
        const next = this.at(this.i + 1);
        if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) this.fail('lone surrogate');
        this.i += 2;
      } else {
        this.i++;
      }
    }
  }

  /** Reads the escape at `this.i` (the backslash); returns the text it stands for. */
  private escape(): string {
    const c = this.at(this.i + 1);
    if (c !== 0x75) {
      const e = ESCAPES[c];
      if (e === undefined) this.fail('invalid escape');
      this.i += 2;
      return e;
    }
    const u = hex4(this.s, this.i + 2);
    if (u < 0) this.fail('invalid \\u escape');
    if (u >= 0xdc00 && u <= 0xdfff) this.fail('escaped lone surrogate');
    if (u >= 0xd800 && u <= 0xdbff) {
      // A high surrogate must be followed by an escaped low one.
      const low = this.at(this.i + 6) === BACKSLASH && this.at(this.i + 7) === 0x75 ? hex4(this.s, this.i + 8) : -1;
      if (!(low >= 0xdc00 && low <= 0xdfff)) this.fail('escaped lone surrogate');
      this.i += 12;
      return String.fromCharCode(u, low);
    }
    this.i += 6;
    return String.fromCharCode(u);
  }

  private number(): number {
    const start = this.i;
    if (this.at(this.i) === 0x2d) this.i++;
    if (this.at(this.i) === 0x30) {
      this.i++;
    } else if (isDigit(this.at(this.i))) {
      while (isDigit(this.at(this.i))) this.i++;
    } else {
      this.fail('invalid number');
    }
    if (this.at(this.i) === 0x2e) {
      this.i++;
      if (!isDigit(this.at(this.i))) this.fail('invalid number');
      while (isDigit(this.at(this.i))) this.i++;
    }
    if (this.at(this.i) === 0x65 || this.at(this.i) === 0x45) {
      this.i++;
      if (this.at(this.i) === 0x2b || this.at(this.i) === 0x2d) this.i++;
      if (!isDigit(this.at(this.i))) this.fail('invalid number');
      while (isDigit(this.at(this.i))) this.i++;
    }
    // Number() of a JSON number literal is its nearest double, as in JSON.parse.
    const v = Number(this.s.slice(start, this.i));
    if (!Number.isFinite(v)) {
      this.i = start;
      this.fail('number overflows a double');
    }
    return v;
  }
}

/**
 * Parses JSON text strictly: `bad_json` for anything RFC 8259 or SPEC
 * section 1 rejects (lone surrogates, escaped or raw; numbers that overflow a
 * double; a byte-order mark; trailing text), `too_large` for nesting deeper
 * than `maxDepth` levels (the outermost object or array is level 1).
 * Objects are plain objects; a `__proto__` key is an ordinary own property.
 */
export function parseJson(text: string, maxDepth: number): JsonValue {
  return new Parser(text, maxDepth).document();
}
