/**
 * Runs every case of ../protocol/vectors/*.json (SPEC section 15) against the
 * built package, one top-level test per case, so TAP prints one
 * `ok N - FILE: CASE` line per case.
 *
 * A case passes when the output equals `expect` as a JSON value, or when the
 * call throws a ProtocolError whose {code, pos, path} are exactly `error`.
 */

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  ProtocolError,
  bucket,
  canonicalKey,
  decodeEnvelope,
  decodeFrame,
  decodeHeader,
  decodeInvalidation,
  encodeHeader,
  matches,
  valueString,
} from '@mizan/hub-client/protocol';
import type { EntryInput, ParamsInput, Scope } from '@mizan/hub-client/protocol';

const VECTORS_DIR = process.env['MIZAN_VECTORS'] ?? fileURLToPath(new URL('../../protocol/vectors/', import.meta.url));

function text(input: unknown): string {
  assert.equal(typeof input, 'string', 'this kind takes a string input');
  return input as string;
}

/** How each kind runs one input (SPEC section 15's table). */
const RUNNERS: { readonly [kind: string]: (input: unknown) => unknown } = {
  header_decode: (input) => decodeHeader(text(input)),
  header_encode: (input) => encodeHeader(input),
  invalidation_decode: (input) => decodeInvalidation(input),
  roundtrip: (input) => {
    const header = encodeHeader(input);
    return { header, json: decodeHeader(header) };
  },
  canonical_key: (input) => {
    const { context, params } = input as { context: string; params?: ParamsInput };
    const key = canonicalKey(context, params);
    return { key, bucket: bucket(key) };
  },
  match: (input) => {
    const { entry, subscription } = input as { entry: EntryInput; subscription: Scope };
    return matches(entry, subscription);
  },
  frame_decode: (input) => decodeFrame(text(input)),
  envelope_decode: (input) => decodeEnvelope(text(input)),
  value_string: (input) => valueString(input),
};

interface VectorCase {
  name: string;
  input: unknown;
  expect?: unknown;
  error?: { code: string; pos?: number; path?: string };
}

interface VectorFile {
  file: string;
  kind: string;
  cases: VectorCase[];
}

/** The error's place fields that exist, as a vector writes them. */
function errorFields(e: ProtocolError): { code: string; pos?: number; path?: string } {
  const out: { code: string; pos?: number; path?: string } = { code: e.code };
  if (e.pos !== undefined) out.pos = e.pos;
  if (e.path !== undefined) out.path = e.path;
  return out;
}

function runCase(kind: string, c: VectorCase): void {
  const run = RUNNERS[kind];
  assert.ok(run, `no runner for kind ${kind}`);
  if (c.error !== undefined) {
    let thrown: unknown;
    let result: unknown;
    try {
      result = run(c.input);
    } catch (e) {
      thrown = e;
    }
    if (thrown === undefined) assert.fail(`expected error ${JSON.stringify(c.error)}, got ${JSON.stringify(result)}`);
    if (!(thrown instanceof ProtocolError)) throw thrown;
    assert.deepStrictEqual(errorFields(thrown), c.error, thrown.message);
    return;
  }
  assert.deepStrictEqual(run(c.input), c.expect);
  if (kind === 'roundtrip') {
    // The decoded header equals the normalized list, which is what decodeInvalidation gives.
    assert.deepStrictEqual(decodeInvalidation(c.input), (c.expect as { json: unknown }).json);
  }
}

function loadVectors(): VectorFile[] {
  const files = readdirSync(VECTORS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
  return files.map((f) => {
    const doc = JSON.parse(readFileSync(join(VECTORS_DIR, f), 'utf8')) as Partial<VectorFile>;
    return { file: f, kind: String(doc.kind), cases: Array.isArray(doc.cases) ? doc.cases : [] };
  });
}

let vectors: VectorFile[] = [];
try {
  vectors = loadVectors();
} catch (e) {
  test(`load ${VECTORS_DIR}`, () => {
    throw e;
  });
}

test('vectors: every file has a kind this runner knows', () => {
  assert.ok(vectors.length > 0, `no vector files in ${VECTORS_DIR}`);
  const unknown = vectors.filter((v) => !Object.prototype.hasOwnProperty.call(RUNNERS, v.kind));
  assert.deepStrictEqual(
    unknown.map((v) => `${v.file}: ${v.kind}`),
    [],
    'vector kinds without a runner: add one to RUNNERS',
  );
});

test('vectors: every kind the runner knows has cases', () => {
  const seen = new Set(vectors.filter((v) => v.cases.length > 0).map((v) => v.kind));
  assert.deepStrictEqual(
    Object.keys(RUNNERS).filter((k) => !seen.has(k)),
    [],
  );
});

test('vectors: every case is {name, input, expect} or {name, input, error}', () => {
  const problems: string[] = [];
  for (const v of vectors) {
    const names = new Set<string>();
    for (const c of v.cases as unknown as Record<string, unknown>[]) {
      const where = `${v.file}: ${JSON.stringify(c['name'])}`;
      const keys = Object.keys(c).sort().join(',');
      if (keys !== 'expect,input,name' && keys !== 'error,input,name') problems.push(`${where}: keys ${keys}`);
      if (typeof c['name'] !== 'string') problems.push(`${where}: name is not a string`);
      else if (names.has(c['name'])) problems.push(`${where}: duplicate name`);
      else names.add(c['name']);
      const err = c['error'] as Record<string, unknown> | undefined;
      if (err !== undefined) {
        if (typeof err['code'] !== 'string') problems.push(`${where}: error.code is not a string`);
        for (const k of Object.keys(err)) if (!['code', 'pos', 'path'].includes(k)) problems.push(`${where}: error.${k}`);
      }
    }
  }
  assert.deepStrictEqual(problems, []);
});

for (const v of vectors) {
  if (!Object.prototype.hasOwnProperty.call(RUNNERS, v.kind)) continue; // reported above
  const label = basename(v.file, '.json');
  for (const c of v.cases) {
    test(`${label}: ${c.name}`, () => runCase(v.kind, c));
  }
}
