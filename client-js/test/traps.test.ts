/**
 * The JavaScript traps SPEC section 3 warns about, shown on this runtime:
 * each of the "obvious" ways to order params gives another key than
 * canonicalKey, which orders by UTF-8 bytes.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bucket, canonicalKey, compareCodePoints, encodeHeader, fnv1a32 } from '@mizan/hub-client/protocol';

/** A key built the naive way, with the given order of names. */
function naiveKey(context: string, params: Record<string, string>, names: string[]): string {
  return `[${JSON.stringify(context)},{${names.map((n) => `${JSON.stringify(n)}:${JSON.stringify(params[n])}`).join(',')}}]`;
}

const EMOJI_FULLWIDTH = { '😀': '1', 'ｚ': '2' }; // U+1F600, U+FF5A
const EMOJI_FFFD = { '\uFFFD': '1', '😀': '2', a: '3' };
const CASES = { b: '1', B: '2', a: '3' };
const ACCENTED = { 'é': '1', e: '2', f: '3' };
const INTEGER_LIKE = { '9': 'b', '10': 'a', a: 'c' };

test('trap: default sort (UTF-16) puts U+1F600 before U+FF5A; canonicalKey after', () => {
  const names = Object.keys(EMOJI_FULLWIDTH).sort();
  assert.deepStrictEqual(names, ['😀', 'ｚ']);
  const key = canonicalKey('x', EMOJI_FULLWIDTH);
  assert.equal(key, '["x",{"ｚ":"2","😀":"1"}]');
  assert.notEqual(naiveKey('x', EMOJI_FULLWIDTH, names), key);
});

test('trap: default sort puts U+1F600 before U+FFFD; canonicalKey after', () => {
  const names = Object.keys(EMOJI_FFFD).sort();
  assert.deepStrictEqual(names, ['a', '😀', '\uFFFD']);
  const key = canonicalKey('x', EMOJI_FFFD);
  assert.equal(key, '["x",{"a":"3","\uFFFD":"1","😀":"2"}]');
  assert.notEqual(naiveKey('x', EMOJI_FFFD, names), key);
});

test('trap: localeCompare orders differently from canonicalKey', () => {
  const byLocale = (p: Record<string, string>) => Object.keys(p).sort((a, b) => a.localeCompare(b));
  for (const [params, canonical] of [
    [EMOJI_FULLWIDTH, '["x",{"ｚ":"2","😀":"1"}]'],
    [CASES, '["x",{"B":"2","a":"3","b":"1"}]'],
    [ACCENTED, '["x",{"e":"2","f":"3","é":"1"}]'],
  ] as const) {
    const key = canonicalKey('x', params);
    assert.equal(key, canonical);
    assert.notEqual(naiveKey('x', params, byLocale(params)), key, `localeCompare order ${byLocale(params).join(' ')}`);
  }
});

test('trap: object key order puts integer-like "9" before "10"; canonicalKey does not', () => {
  assert.deepStrictEqual(Object.keys(INTEGER_LIKE), ['9', '10', 'a']);
  assert.equal(JSON.stringify(INTEGER_LIKE), '{"9":"b","10":"a","a":"c"}');
  const key = canonicalKey('x', INTEGER_LIKE);
  assert.equal(key, '["x",{"10":"a","9":"b","a":"c"}]');
  assert.notEqual(`["x",${JSON.stringify(INTEGER_LIKE)}]`, key);
  // Same order in the header encoding.
  assert.equal(encodeHeader([{ context: 'x', params: INTEGER_LIKE }]), 'x;10=a;9=b;a=c');
});

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random well-formed text mixing ASCII, 2- and 3-byte BMP (both sides of the surrogates) and astral characters. */
function randomText(rand: () => number, max: number): string {
  const ranges: [number, number][] = [
    [0x20, 0x7e],
    [0x80, 0x7ff],
    [0x800, 0xd7ff],
    [0xe000, 0xffff],
    [0x10000, 0x10ffff],
  ];
  let s = '';
  const n = Math.floor(rand() * max);
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[Math.floor(rand() * ranges.length)] as [number, number];
    s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
  }
  return s;
}

test('compareCodePoints is the order of UTF-8 bytes', () => {
  const rand = prng(20261125);
  for (let i = 0; i < 5000; i++) {
    const a = randomText(rand, 4);
    // Half the pairs share a prefix, so the difference is deeper in.
    const b = rand() < 0.5 ? a.slice(0, Math.floor(rand() * (a.length + 1))) + randomText(rand, 3) : randomText(rand, 4);
    const want = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    assert.equal(Math.sign(compareCodePoints(a, b)), want, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});

test('canonical string escaping equals JSON.stringify for well-formed text', () => {
  const rand = prng(7);
  for (let i = 0; i < 2000; i++) {
    let v = randomText(rand, 6);
    // Sprinkle in every character below U+0020 but U+0000 (not allowed in values), quote and backslash.
    if (rand() < 0.5) v += String.fromCharCode(1 + Math.floor(rand() * 0x1f)) + (rand() < 0.5 ? '"' : '\\');
    assert.equal(canonicalKey('x', { k: v }), `["x",{"k":${JSON.stringify(v)}}]`);
  }
});

test('fnv1a32 known answers and bucket', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  assert.equal(fnv1a32(new Uint8Array([0x61])), 0xe40c292c);
  assert.equal(bucket('foobar'), 0xbf9cf968 % 1024);
  // UTF-8 bytes, not UTF-16 code units.
  assert.equal(fnv1a32('é'), fnv1a32(new Uint8Array([0xc3, 0xa9])));
});
