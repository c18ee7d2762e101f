// Bundles each entry of dist/ with esbuild (minified ESM, React external),
// writes dist-bundle/<entry>.min.js and dist-bundle/sizes.json, and reports
// minified and minified+gzipped sizes on stderr (stdout stays TAP).
// Gzip is node's zlib at level 9. The core budget (6 KiB) is checked by
// test/bundle.test.ts, which reads sizes.json.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const ENTRIES = ['index', 'protocol', 'react', 'mizan', 'tanstack', 'swr'];
const here = new URL('.', import.meta.url).pathname;
mkdirSync(`${here}dist-bundle`, { recursive: true });

const sizes = {};
for (const entry of ENTRIES) {
  const result = await build({
    entryPoints: [`${here}dist/${entry}.js`],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    platform: 'browser',
    external: ['react'],
    write: false,
    logLevel: 'error',
  });
  const code = result.outputFiles[0].contents;
  writeFileSync(`${here}dist-bundle/${entry}.min.js`, code);
  sizes[entry] = { min: code.length, gzip: gzipSync(code, { level: 9 }).length };
  process.stderr.write(`bundle ${entry}: ${sizes[entry].min} bytes min, ${sizes[entry].gzip} bytes min+gz\n`);
}
writeFileSync(`${here}dist-bundle/sizes.json`, JSON.stringify(sizes, null, 2) + '\n');
