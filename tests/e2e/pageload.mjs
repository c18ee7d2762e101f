// Page-load requests to Django with and without versions in context
// responses (SPEC 10.1), in Debian's Chromium (headless, driven by
// playwright-core) against the real hub, Redis and the Django demo. The
// page-load test of e2e.test.mjs (run by ci-test) uses `loadBoard` and
// `addTodo`; run alone, this file measures and prints:
//
//   node tests/e2e/pageload.mjs [RUNS]      (after `npm ci` in tests/e2e)
//
// The demo's board page (/board/) has SIZE contexts, board0..board19, one
// panel each, counting the demo's todos; saving a todo publishes every
// board context (the demo's MODELS), as a change on a running site does.
// A load waits until every subscription is acked and the network is quiet,
// and counts the requests to /api/board/ Chromium made:
//
//   ?versions=0  subscribe at mount, fetch, refetch after the first ack
//   ?versions=1  fetch, subscribe with since = the response's X-Mizan-Version
//
// `between` (a load with versions) holds every panel's response until all
// are in, runs `between` (a todo added through Django: every board context
// changes and is published) and only then lets the responses through, so
// each version is older than what the hub has when the page subscribes.

import { pathToFileURL } from 'node:url';

import { sleep } from './lib.mjs';

export const SIZE = 20;
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const BROWSER_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking'];

/** Adds a todo through the demo's own view (CSRF as its page does it); resolves once Django answered, i.e. after its publish. */
export async function addTodo(context, baseUrl, title) {
  let csrf = (await context.cookies(baseUrl)).find((c) => c.name === 'csrftoken');
  if (!csrf) {
    await context.request.get(baseUrl); // the page view sets it (ensure_csrf_cookie)
    csrf = (await context.cookies(baseUrl)).find((c) => c.name === 'csrftoken');
  }
  const r = await context.request.post(`${baseUrl}api/todos/add/`, {
    headers: { 'X-CSRFToken': csrf.value, 'Content-Type': 'application/json', Referer: baseUrl },
    data: { title },
  });
  if (!r.ok()) throw new Error(`POST api/todos/add/: ${r.status()} ${await r.text()}`);
}

/**
 * Loads /board/ in a new page of `context`, waits for every subscription's
 * ack and a quiet network (and, with `between`, for every panel to show
 * `expect(i)`), and returns {requests, fetches, acks, panels}.
 */
export async function loadBoard(context, url, { between, expect } = {}) {
  const page = await context.newPage();
  let requests = 0;
  page.on('request', (r) => void (new URL(r.url()).pathname.startsWith('/api/board/') && requests++));
  if (between) {
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
  try {
    await page.goto(url, { timeout: 15_000 });
    await page.waitForFunction((n) => window.board && window.board.acks >= n, SIZE, { timeout: 15_000 });
    if (expect) {
      // nothing stale: every panel ends up showing the data after the change
      const want = Array.from({ length: SIZE }, (_, i) => expect(i));
      await page
        .waitForFunction((w) => w.every((text, i) => document.querySelectorAll('#panels div')[i]?.textContent === text), want, { timeout: 15_000 })
        .catch(() => undefined); // the caller compares `panels` and says what is stale
    }
    // quiet: no new panel request for 1 s after the last ack (a refetch is spread over at most the welcome's spread_ms, 1 s)
    let last = -1;
    while (last !== requests) {
      last = requests;
      await sleep(1000);
    }
    const stats = await page.evaluate(() => ({ ...window.board }));
    const panels = await page.$$eval('#panels div', (els) => els.map((e) => e.textContent));
    return { requests, fetches: stats.fetches, acks: stats.acks, panels };
  } finally {
    await page.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const assert = (await import('node:assert/strict')).default;
  const { chromium } = await import('playwright-core');
  const { startDemo, startHub, startRedis } = await import('./lib.mjs');
  const RUNS = Number(process.argv[2] || 3);
  const redis = await startRedis();
  let browser;
  let hub;
  let demo;
  try {
    hub = await startHub(redis.url);
    demo = await startDemo({ redisUrl: redis.url, hubPort: hub.port });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS, timeout: 30_000 });
    const fresh = async (f) => {
      const context = await browser.newContext();
      try {
        return await f(context);
      } finally {
        await context.close();
      }
    };
    await fresh((c) => addTodo(c, demo.url, 'published once beforehand')); // every board context has a version hash
    const out = { 0: [], 1: [] };
    for (let run = 0; run < RUNS; run++) {
      for (const v of [0, 1]) {
        const { panels, ...r } = await fresh((c) => loadBoard(c, `${demo.url}board/?versions=${v}`));
        console.log(JSON.stringify({ versions: v, run, ...r }));
        out[v].push(r.requests);
      }
    }
    const { panels, ...changed } = await fresh((c) =>
      loadBoard(c, `${demo.url}board/?versions=1`, { between: () => addTodo(c, demo.url, 'between'), expect: (i) => `board${i}: 2 todos, 0 done` }),
    );
    console.log(JSON.stringify({ versions: 1, published_between_fetch_and_subscribe: true, ...changed, stale: panels.filter((p) => !p.includes(': 2 todos')) }));
    console.log(`page load of ${SIZE} contexts, requests to Django: without versions ${out[0].join(', ')}; with versions ${out[1].join(', ')}; ` +
      `with versions and every context changed between fetch and subscribe: ${changed.requests}`);
    assert.deepEqual(panels.filter((p) => !p.includes(': 2 todos')), [], 'a panel stayed stale');
  } finally {
    await browser?.close();
    for (const p of [demo, hub, redis]) await p?.stop();
  }
}
