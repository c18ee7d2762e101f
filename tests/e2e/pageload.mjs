// Page-load requests to Django with and without versions in context
// responses (SPEC 10.1), measured in Debian's Chromium (headless, driven by
// playwright-core) against the real hub, Redis and the Django demo, all on
// free ports of 127.0.0.1:
//
//   node tests/e2e/pageload.mjs [RUNS]      (after `npm ci` in tests/e2e)
//
// The demo's board page (/board/) has 20 contexts, board0..board19, each
// published once beforehand with Django's own publish script (so each has a
// version hash, as a context of a running site does). Each run loads the page
// in a fresh browser context, waits until all 20 subscriptions are acked and
// the network is quiet, and counts the requests to /api/board/ Chromium made:
//
//   ?versions=0  subscribe at mount, fetch, refetch after the first ack (today)
//   ?versions=1  fetch, subscribe with since = the response's X-Mizan-Version
//
// Then, with versions, one more run where every context is published between
// the page's fetch and its subscribe: each panel must be refetched once
// (nothing stays stale). Prints one JSON line per run and a summary; exits 1
// when a run does not end in the expected state.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { ROOT, sleep, startDemo, startHub, startRedis } from './lib.mjs';

const RUNS = Number(process.argv[2] || 3);
const SIZE = 20;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCRIPT = readFileSync(join(ROOT, 'django', 'mizan_hub', 'lua', 'publish.lua'), 'utf8');

/** One Redis command over RESP (the reply's first line is enough here). */
function redis(port, args) {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
    });
    let got = '';
    s.setTimeout(3000, () => s.destroy(new Error('redis: no reply')));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) {
        s.end();
        if (got.startsWith('-')) reject(new Error(got));
        else resolve(got);
      }
    });
    s.on('error', reject);
  });
}

/** Publishes an unscoped invalidation of `contexts` with Django's script (lua/publish.lua's contract). */
function publish(port, contexts) {
  const head = `{"v":1,"kind":"invalidate","ts":${Date.now()},"invalidate":${JSON.stringify(contexts)}`;
  const argv = contexts.flatMap((c) => [JSON.stringify(c), '1', 'u']);
  return redis(port, ['EVAL', SCRIPT, String(contexts.length), ...contexts.map((c) => `mizan:v:${c}`), 'invalidate', 'mizan:events', head, ...argv]);
}

async function load(browser, url, between) {
  const context = await browser.newContext();
  const page = await context.newPage();
  let requests = 0;
  page.on('request', (r) => void (new URL(r.url()).pathname.startsWith('/api/board/') && requests++));
  if (between) {
    // Hold every panel's response until all are in, then publish every
    // context before letting them through: each version is older than what
    // the hub has by the time the page subscribes.
    let held = [];
    await page.route('**/api/board/**', async (route) => {
      if (held === null) return route.continue();
      const response = await route.fetch();
      held.push(() => route.fulfill({ response }));
      if (held.length === SIZE) {
        await between();
        const go = held;
        held = null;
        go.forEach((f) => f());
      }
    });
  }
  await page.goto(url, { timeout: 15_000 });
  await page.waitForFunction((n) => window.board && window.board.acks >= n, SIZE, { timeout: 15_000 });
  // quiet: no new panel request for 1 s after the last ack
  let last = -1;
  while (last !== requests) {
    last = requests;
    await sleep(1000);
  }
  const stats = await page.evaluate(() => ({ ...window.board }));
  await context.close();
  return { requests, fetches: stats.fetches, acks: stats.acks };
}

const redisProc = await startRedis();
let browser;
let hub;
let demo;
try {
  hub = await startHub(redisProc.url);
  demo = await startDemo({ redisUrl: redisProc.url, hubPort: hub.port });
  const boards = Array.from({ length: SIZE }, (_, i) => `board${i}`);
  await publish(redisProc.port, boards);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 30_000,
  });
  const out = { 0: [], 1: [] };
  for (let run = 0; run < RUNS; run++) {
    for (const v of [0, 1]) {
      const r = await load(browser, `${demo.url}board/?versions=${v}`);
      console.log(JSON.stringify({ versions: v, run, ...r }));
      out[v].push(r.requests);
    }
  }
  const changed = await load(browser, `${demo.url}board/?versions=1`, () => publish(redisProc.port, boards));
  console.log(JSON.stringify({ versions: 1, published_between_fetch_and_subscribe: true, ...changed }));
  console.log(`page load of ${SIZE} contexts, requests to Django: without versions ${out[0].join(', ')}; with versions ${out[1].join(', ')}; ` +
    `with versions and every context changed between fetch and subscribe: ${changed.requests}`);
  for (const n of out[0]) assert.equal(n, 2 * SIZE);
  for (const n of out[1]) assert.equal(n, SIZE);
  assert.equal(changed.requests, 2 * SIZE, 'every panel changed after its fetch must be refetched once');
} finally {
  await browser?.close();
  for (const p of [demo, hub, redisProc]) await p?.stop();
}
