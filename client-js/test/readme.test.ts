/**
 * Every TypeScript sample of README.md compiles against the package as
 * published (its `exports`, strict mode): each ```ts / ```tsx block becomes
 * one module in dist-readme/, type-checked by one tsc run. What the prose
 * assumes (a `hub`, a `queryClient`, the app's own functions) is declared in
 * dist-readme/ambient.d.ts, below.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('..', import.meta.url)); // client-js/
const dir = join(here, 'dist-readme');

const AMBIENT = `
import type { HubClient, ParamsInput as P } from '@mizan/hub-client';
import type { QueryClient } from '@tanstack/query-core';
import type { useEffect as UseEffect } from 'react';
declare global {
  /** a client made elsewhere with connect() */
  const hub: HubClient;
  const queryClient: QueryClient;
  type ParamsInput = P;
  const useEffect: typeof UseEffect;
  /** the application's own */
  function refetchUser(id: number): void;
  function fetchUser(id: number): Promise<{ name: string }>;
  function refetchUserContext(): void;
  const body: string;
  const mizanRuntime: { registerContext(name: string, params: ParamsInput, refetch: () => void): () => void };
}
export {};
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2022', 'DOM'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    jsx: 'react-jsx',
    strict: true,
    noEmit: true,
    types: [],
    skipLibCheck: true,
  },
  include: ['*.ts', '*.tsx'],
};

const readme = readFileSync(join(here, 'README.md'), 'utf8');
const samples = [...readme.matchAll(/^ *```(tsx?)\n([\s\S]*?)^ *```/gm)].map((m, i) => ({
  file: `sample${i}.${m[1] as string}`,
  code: m[2] as string,
  first: (m[2] as string).split('\n').find((l) => l.trim()) ?? '',
}));
const errors = new Map<string, string[]>();

before(() => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(join(dir, 'ambient.d.ts'), AMBIENT);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG));
  // each a module of its own (top-level await, no clashes between samples)
  for (const s of samples) writeFileSync(join(dir, s.file), s.code + '\nexport {};\n');
  const r = spawnSync(process.execPath, [join(here, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
  for (const line of r.stdout.split('\n')) {
    const at = /(sample\d+\.tsx?)\(/.exec(line);
    if (at) errors.set(at[1] as string, [...(errors.get(at[1] as string) ?? []), line]);
    else if (line.includes('error TS')) errors.set('other', [...(errors.get('other') ?? []), line]);
  }
});

test('readme: the samples are found (every ```ts and ```tsx block), no error outside them', () => {
  assert.ok(samples.length >= 9, `only ${samples.length} samples`);
  assert.deepEqual(errors.get('other') ?? [], []);
});

for (const s of samples) {
  test(`readme: ${s.file} compiles (${s.first.trim().slice(0, 50)})`, () => {
    assert.deepEqual(errors.get(s.file) ?? [], []);
  });
}
