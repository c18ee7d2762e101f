/**
 * The package as it would be published: the tarball `npm pack` wrote to
 * dist-pack/ (ci-test runs it; the prepack script builds dist/, the ES
 * modules, and dist/cjs/, the CommonJS build) holds what a registry needs
 * and nothing else, and installed into a fresh node_modules it loads from a
 * CommonJS script (what Jest in CommonJS mode does: the `require`
 * condition), from an ES module, and type-checks from a CommonJS TypeScript
 * file (`.cts`, module node16).
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('..', import.meta.url)); // client-js/
const ENTRIES = ['index', 'protocol', 'react', 'mizan', 'tanstack', 'swr'];

let tarball = '';
let files: string[] = [];
let root = '';

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

before(() => {
  const packs = readdirSync(join(here, 'dist-pack')).filter((f) => f.endsWith('.tgz'));
  assert.equal(packs.length, 1, 'dist-pack/ holds one tarball (ci-test runs npm pack)');
  tarball = join(here, 'dist-pack', packs[0] as string);
  files = run('tar', ['-tzf', tarball], here)
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
  // A consumer's project: the package and its peer dependency (React, and its types for the .cts check).
  root = mkdtempSync(join(tmpdir(), 'mizan-hub-client-'));
  const pkg = join(root, 'node_modules', '@mizan', 'hub-client');
  mkdirSync(pkg, { recursive: true });
  run('tar', ['-xzf', tarball, '-C', pkg, '--strip-components=1'], here);
  mkdirSync(join(root, 'node_modules', '@types'));
  for (const dep of ['react', 'csstype', join('@types', 'react')]) symlinkSync(join(here, 'node_modules', dep), join(root, 'node_modules', dep));
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

test('package: the tarball holds LICENSE, README, both builds with types, and no sources or tests', () => {
  for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/cjs/package.json']) assert.ok(files.includes(f), f);
  for (const e of ENTRIES) {
    for (const f of [`dist/${e}.js`, `dist/${e}.d.ts`, `dist/cjs/${e}.js`, `dist/cjs/${e}.d.ts`]) assert.ok(files.includes(f), f);
  }
  const stray = files.filter((f) => !/^(LICENSE|README\.md|package\.json|dist\/.*\.(js|d\.ts)|dist\/cjs\/package\.json)$/.test(f));
  assert.deepEqual(stray, []);
  assert.equal(
    readFileSync(join(root, 'node_modules/@mizan/hub-client/LICENSE'), 'utf8'),
    readFileSync(join(here, '..', 'LICENSE'), 'utf8'),
    "the repository's one LICENSE",
  );
});

test('package: package.json has what a registry needs, and every export target is in the tarball', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'node_modules/@mizan/hub-client/package.json'), 'utf8')) as {
    [k: string]: unknown;
    exports: { [k: string]: { [c: string]: { types: string; default: string } } | string };
    repository: { url: string; directory: string };
  };
  assert.equal(pkg['license'], 'Elastic-2.0', 'the license Mizan declares (django-izana, izana-core on PyPI)');
  assert.match(pkg.repository.url, /^git\+https:\/\//);
  assert.equal(pkg.repository.directory, 'client-js');
  for (const k of ['name', 'version', 'description', 'homepage', 'bugs', 'main', 'types']) assert.ok(pkg[k], k);
  assert.notEqual(pkg['private'], true);
  for (const [name, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue;
    for (const cond of ['import', 'require']) {
      const t = target[cond];
      assert.ok(t, `${name}: no ${cond} condition`);
      for (const f of [t.types, t.default]) assert.ok(files.includes(f.replace(/^\.\//, '')), `${name} ${cond}: ${f}`);
    }
  }
});

test('package: a CommonJS script (Jest in CommonJS mode) requires every entry of the installed package', () => {
  writeFileSync(
    join(root, 'check.cjs'),
    `
const assert = require('node:assert/strict');
delete globalThis.WebSocket; // Node 22+ has one: stand for Node 20, or a server render
const core = require('@mizan/hub-client');
const protocol = require('@mizan/hub-client/protocol');
const react = require('@mizan/hub-client/react');
for (const e of ['mizan', 'tanstack', 'swr']) assert.equal(typeof Object.values(require('@mizan/hub-client/' + e))[0], 'function', e);
assert.equal(typeof react.useHubState, 'function');
assert.equal(core.ProtocolError, protocol.ProtocolError, 'one class across entries');
assert.equal(core.canonicalKey('user', { user_id: 5 }), '["user",{"user_id":"5"}]');
const sent = [];
class WS { constructor(url) { this.url = url; } send(f) { sent.push(JSON.parse(f)); } close() {} }
const hub = core.connect({ url: 'ws://127.0.0.1:1/', WebSocket: WS, window: null, document: null });
assert.equal(hub.state, 'connecting');
hub.close();
assert.throws(() => core.connect({ url: 'ws://127.0.0.1:1/', WebSocket: undefined }), /no WebSocket/);
console.log('cjs ok');
`,
  );
  assert.equal(run(process.execPath, ['check.cjs'], root).trim(), 'cjs ok');
});

test('package: an ES module imports the same entries', () => {
  writeFileSync(
    join(root, 'check.mjs'),
    `
import assert from 'node:assert/strict';
import { connect, RpcError } from '@mizan/hub-client';
import { decodeFrame } from '@mizan/hub-client/protocol';
import { useHubState } from '@mizan/hub-client/react';
import { swrAdapter } from '@mizan/hub-client/swr';
assert.equal(typeof connect, 'function');
assert.equal(new RpcError('ABORTED', 'x').code, 'ABORTED');
assert.equal(decodeFrame('{"action":"ping"}').action, 'ping');
assert.equal(typeof useHubState, 'function');
assert.equal(typeof swrAdapter, 'function');
console.log('esm ok');
`,
  );
  assert.equal(run(process.execPath, ['check.mjs'], root).trim(), 'esm ok');
});

test('package: a CommonJS TypeScript file (module node16) type-checks against the require condition', () => {
  writeFileSync(
    join(root, 'check.cts'),
    `
import { connect, RpcError } from '@mizan/hub-client';
import type { HubClient, RpcErrorCode } from '@mizan/hub-client';
import { useHubState } from '@mizan/hub-client/react';
import type { HubState } from '@mizan/hub-client/react';
export async function add(hub: HubClient): Promise<number> {
  const todo = await hub.rpc<{ id: number }>('todos.add', { title: 'milk' }, { signal: new AbortController().signal });
  return todo.id;
}
export const code: RpcErrorCode = new RpcError('TIMEOUT', 'x').code;
export const hook: () => HubState = useHubState;
export const make = connect;
`,
  );
  writeFileSync(
    join(root, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022', lib: ['es2022', 'dom'], strict: true, noEmit: true, types: [] },
      files: ['check.cts'],
    }),
  );
  run(process.execPath, [join(here, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], root);
});
