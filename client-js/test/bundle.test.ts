/**
 * The core entry's size budget: under 7.5 KiB minified and gzipped (zlib
 * level 9), as measured by ../bundle.mjs (which ci-test runs before the
 * tests). It was 6 KiB until the client learned subscriptions the hub ends
 * and resumes it rate-limits (issue 12): 6,251 B then; 6.5 KiB until it
 * learned to fall back to Server-Sent Events by itself (issue 16, SPEC 6.1:
 * the transport must be in the core entry, since applications do not
 * change): 7,031 B then; 7 KiB until presence (SPEC 11.2, `presence()`)
 * and that fallback met in one branch: 7,197 B then.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const BUDGET = 7.5 * 1024;

test('bundle: the core entry is under 7.5 KiB min+gz and free of React', () => {
  const sizes = JSON.parse(readFileSync(new URL('../dist-bundle/sizes.json', import.meta.url), 'utf8')) as {
    [entry: string]: { min: number; gzip: number };
  };
  const core = sizes['index'];
  assert.ok(core, 'dist-bundle/sizes.json has no "index" entry: run ../bundle.mjs');
  assert.ok(core.gzip < BUDGET, `core bundle is ${core.gzip} bytes min+gz, over ${BUDGET}`);
  const code = readFileSync(new URL('../dist-bundle/index.min.js', import.meta.url), 'utf8');
  assert.ok(!/from\s*"react"|require\("react"\)/.test(code), 'the core bundle imports React');
});
