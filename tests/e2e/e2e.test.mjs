// The demo (django/example, the shared todo list) in a real browser -- Debian's
// Chromium, headless, driven by playwright-core -- through the real hub and
// Redis, all on free ports of 127.0.0.1:
//
//   1. two pages open; a todo added in page A appears in page B within 1 s;
//   2. the hub is SIGKILLed; a todo is added through page A (Django and Redis
//      are up, the publish reaches no hub); page B does not have it; the hub
//      restarts on the same port; page B's client reconnects, resubscribes
//      with `since`, gets a `resume` invalidation and shows the todo (15 s
//      deadline);
//   3. a third page whose WebSocket cannot open (its constructor replaced by
//      one that fails as a proxy that breaks upgrades makes it fail) falls
//      back to Server-Sent Events by itself (SPEC 6.1) and shows a todo
//      added in page A within 2 s; its GET /sse and POST /sse/<conn> are seen
//      on the wire (artifacts/c-sse.png); and a bare EventSource (no
//      client-js) reconnects by itself after the hub restarts, sends its
//      Last-Event-ID and gets the todo added meanwhile as a `resume`;
//   4. screenshots of both pages: artifacts/a.png, artifacts/b.png and both
//      side by side in artifacts/screenshot.png;
//   5. page load of the board (20 contexts, pageload.mjs): requests to Django
//      without versions in responses (each panel fetched, then refetched
//      after its first ack: 40) and with them (each fetched once: 20, at
//      most 20 + LOAD_MARGIN); and with every context changed through
//      Django between each panel's fetch and its subscribe, every panel ends
//      up showing the new data (nothing stale).
//
// The hub runs with --allow-anonymous: it has no auth yet.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ARTIFACTS, launchChromium, startDemo, startHub, startRedis } from './lib.mjs';
import { SIZE, addTodo, loadBoard } from './pageload.mjs';

let redis;
let hub;
let demo;
let context;
let A;
let B;
const consoleLog = [];

before(async () => {
  redis = await startRedis();
  hub = await startHub(redis.url);
  demo = await startDemo({ redisUrl: redis.url, hubPort: hub.port });
  context = await launchChromium('chromium', { width: 600, height: 640 });
  A = context.pages()[0] ?? (await context.newPage());
  B = await context.newPage();
  for (const [name, page] of [['A', A], ['B', B]]) {
    page.on('console', (m) => consoleLog.push(`${name} ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLog.push(`${name} pageerror: ${e.message}`));
    await page.goto(demo.url, { timeout: 15_000 });
  }
  await Promise.all([open(A), open(B)]);
}, { timeout: 75_000 });

after(async () => {
  if (context) {
    // Whatever happened, leave the pages as evidence.
    await A?.screenshot({ path: join(ARTIFACTS, 'a-final.png') }).catch(() => {});
    await B?.screenshot({ path: join(ARTIFACTS, 'b-final.png') }).catch(() => {});
    await context.close().catch(() => {});
  }
  writeFileSync(join(ARTIFACTS, 'console.log'), consoleLog.join('\n') + '\n');
  await demo?.stop();
  await hub?.stop();
  await redis?.stop();
});

const state = (page) => page.locator('#status').getAttribute('data-state');

async function open(page, ms = 10_000) {
  await page.waitForSelector('#status[data-state="open"]', { timeout: ms });
  // the page subscribes after its first fetch, with that fetch's version (SPEC 10.1)
  await page.waitForSelector('#todos[data-subscribed="true"]', { state: 'attached', timeout: ms });
}

async function titles(page) {
  return page.$$eval('#todos li span', (spans) => spans.map((s) => s.textContent.trim()));
}

/** Waits until `page` lists `title`; returns how long it took (ms). */
async function shows(page, title, ms) {
  const t0 = Date.now();
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#todos li span')].some((s) => s.textContent.trim() === t),
    title,
    { timeout: ms, polling: 20 },
  );
  return Date.now() - t0;
}

async function add(page, title) {
  await page.fill('#add input[name=title]', title);
  await page.press('#add input[name=title]', 'Enter');
}

const timings = {};

test('live: a todo added in page A appears in page B within 1 s', { timeout: 15_000 }, async () => {
  const title = `milk ${Date.now().toString(36)}`;
  assert.ok(!(await titles(B)).includes(title));
  const t0 = Date.now();
  await add(A, title);
  const inB = await shows(B, title, 1000).catch(() => null);
  timings.live = Date.now() - t0;
  assert.ok(inB !== null, `page B did not show "${title}" within 1 s of the submit in page A; B has ${JSON.stringify(await titles(B))}`);
  await shows(A, title, 1000);
  const log = await B.locator('#log').textContent();
  assert.match(log, /refetched \(invalidated/, 'page B refetched because of a pushed invalidation');
});

test('outage: the hub is killed, a todo is added through page A, the hub restarts on the same port; page B heals (resume) and shows it', { timeout: 40_000 }, async () => {
  const port = hub.port;
  await hub.stop('SIGKILL');
  await A.waitForSelector('#status[data-state="reconnecting"]', { timeout: 5000 });
  await B.waitForSelector('#status[data-state="reconnecting"]', { timeout: 5000 });

  // The HTTP write to Django works while the hub is down: the commit
  // publishes (bumping the version hash in Redis) to no hub at all. Page A
  // refetches from its own mutation response.
  const title = `eggs ${Date.now().toString(36)}`;
  await add(A, title);
  await shows(A, title, 3000);
  await B.waitForTimeout(500);
  assert.ok(!(await titles(B)).includes(title), 'page B cannot know yet: it has no hub');
  assert.equal(await state(B), 'reconnecting');

  const t0 = Date.now();
  hub = await startHub(redis.url, port);
  const inB = await shows(B, title, 15_000).catch(() => null);
  timings.heal = Date.now() - t0;
  assert.ok(inB !== null, `page B did not show "${title}" within 15 s of the hub's restart (state ${await state(B)}); B has ${JSON.stringify(await titles(B))}`);
  await open(A);
  await open(B);
  const log = await B.locator('#log').textContent();
  assert.match(log, /refetched \(hub: resume/, 'page B refetched because the hub healed its subscription (reason resume)');
});

test('sse fallback: a page whose WebSocket cannot open uses Server-Sent Events by itself and shows a todo added in page A', { timeout: 30_000 }, async () => {
  const C = await context.newPage();
  const wire = [];
  C.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/sse' || u.pathname.startsWith('/sse/')) wire.push(`${r.method()} ${u.pathname === '/sse' ? '/sse' : '/sse/<conn>'}`);
  });
  C.on('console', (m) => consoleLog.push(`C ${m.type()}: ${m.text()}`));
  C.on('pageerror', (e) => consoleLog.push(`C pageerror: ${e.message}`));
  // What a proxy that breaks upgrades leaves the page: every WebSocket fails before it opens.
  await C.addInitScript(() => {
    window.WebSocket = class BlockedWebSocket {
      constructor() {
        setTimeout(() => {
          this.onerror?.(new Event('error'));
          this.onclose?.({ code: 1006, reason: '' });
        }, 5);
      }
      send() {}
      close() {}
    };
  });
  await C.goto(demo.url, { timeout: 15_000 });
  await open(C, 15_000);
  assert.equal(await C.evaluate(() => window.mizanHub.transport), 'sse');
  assert.equal(await C.locator('#status').getAttribute('data-transport'), 'sse');
  assert.match(await C.locator('#status').textContent(), /over Server-Sent Events/);
  const title = `sse ${Date.now().toString(36)}`;
  const t0 = Date.now();
  await add(A, title);
  const inC = await shows(C, title, 2000).catch(() => null);
  timings.sse = Date.now() - t0;
  assert.ok(inC !== null, `page C (SSE) did not show "${title}" within 2 s; C has ${JSON.stringify(await titles(C))}`);
  assert.match(await C.locator('#log').textContent(), /refetched \(invalidated/, 'page C refetched because of a pushed invalidation');
  assert.ok(wire.includes('GET /sse'), `no stream on the wire: ${wire}`);
  assert.ok(wire.includes('POST /sse/<conn>'), `the subscription was not POSTed: ${wire}`);
  await C.screenshot({ path: join(ARTIFACTS, 'c-sse.png') });
  await C.close();
});

test('a bare EventSource (no client-js) resumes by Last-Event-ID after the hub restarts: what was published meanwhile arrives as a resume invalidation', { timeout: 45_000 }, async () => {
  const D = await context.newPage();
  const reconnects = [];
  const seen = [];
  D.on('request', (r) => {
    // allHeaders: what went on the wire (the renderer's view lacks Last-Event-ID)
    if (new URL(r.url()).pathname === '/sse')
      seen.push(r.allHeaders().then((h) => reconnects.push(h['last-event-id'] ?? null), () => {}));
  });
  D.on('pageerror', (e) => consoleLog.push(`D pageerror: ${e.message}`));
  await D.goto(demo.url, { timeout: 15_000 });
  // The browser's own EventSource, cross-origin (the demo and the hub are on
  // different ports), reconnecting by itself as browsers do (SPEC 6.1).
  await D.evaluate((origin) => {
    window.__frames = [];
    const q = encodeURIComponent(JSON.stringify({ context: 'todos' }));
    window.__es = new EventSource(`${origin}/sse?subscribe=${q}`, { withCredentials: true });
    window.__es.onmessage = (e) => window.__frames.push({ id: e.lastEventId, data: JSON.parse(e.data) });
  }, `http://127.0.0.1:${hub.port}`);
  await D.waitForFunction(() => window.__frames.some((f) => f.data.subscribed), null, { timeout: 10_000 });
  const acked = (await D.evaluate(() => window.__frames)).find((f) => f.data.subscribed);
  assert.equal(acked.id, acked.data.version, "the ack's event id is the subscription's resume point");

  const port = hub.port;
  await hub.stop('SIGKILL');
  const title = `bare ${Date.now().toString(36)}`;
  await add(A, title); // published to no hub: only the version hash moves
  await shows(A, title, 3000);
  hub = await startHub(redis.url, port);
  await D.waitForFunction(() => window.__frames.some((f) => f.data.reason === 'resume'), null, { timeout: 20_000 });
  const resume = (await D.evaluate(() => window.__frames)).find((f) => f.data.reason === 'resume');
  await Promise.all(seen);
  assert.deepEqual(resume.data.invalidate, [{ context: 'todos', params: {} }]);
  assert.ok(reconnects.length >= 2 && reconnects[0] === null, `requests: ${JSON.stringify(reconnects)}`);
  assert.ok(reconnects.slice(1).includes(acked.id), `no reconnect carried Last-Event-ID ${acked.id}: ${JSON.stringify(reconnects)}`);
  await D.evaluate(() => window.__es.close());
  await D.close();
  await open(A);
  await open(B);
});

test('evidence: screenshots of both pages (artifacts/a.png, b.png, screenshot.png)', { timeout: 20_000 }, async () => {
  const a = await A.screenshot({ path: join(ARTIFACTS, 'a.png') });
  const b = await B.screenshot({ path: join(ARTIFACTS, 'b.png') });
  const page = await context.newPage();
  const img = (png) => `data:image/png;base64,${png.toString('base64')}`;
  const when = new Date().toISOString().replace('T', ' ').slice(0, 19);
  await page.setViewportSize({ width: 1240, height: 720 });
  await page.setContent(`<!doctype html><body style="margin:0;padding:10px;background:#d8d8d8;font:14px system-ui,sans-serif">
    <div style="margin-bottom:6px">mizan-hub e2e, ${when} UTC: page A (left) and page B (right), after the live update
    (${timings.live ?? '?'} ms) and the hub restart (healed in ${timings.heal ?? '?'} ms)</div>
    <div style="display:flex;gap:10px">
      <img src="${img(a)}" style="border:1px solid #888"><img src="${img(b)}" style="border:1px solid #888">
    </div></body>`);
  await page.screenshot({ path: join(ARTIFACTS, 'screenshot.png'), fullPage: true });
  await page.close();
  const png = readFileSync(join(ARTIFACTS, 'screenshot.png'));
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  console.log(`live update ${timings.live} ms, healed ${timings.heal} ms after the hub restart, over SSE ${timings.sse} ms; screenshots in ${ARTIFACTS}`);
});

// What a page with versions may fetch beyond one request per panel. Nothing
// else publishes the board's contexts during this test, so any extra
// request means a panel refetched although its data was as new as its
// subscription.
const LOAD_MARGIN = 2;

test(`page load: ${SIZE} contexts, requests to Django without and with versions; a change between fetch and subscribe leaves nothing stale`, { timeout: 90_000 }, async () => {
  const board = (v) => `${demo.url}board/?versions=${v}`;
  const without = await loadBoard(context, board(0));
  const withVersions = await loadBoard(context, board(1));
  let now = null;
  const changed = await loadBoard(context, board(1), {
    between: async () => {
      await addTodo(context, demo.url, `board ${Date.now().toString(36)}`);
      const { todos } = await (await context.request.get(`${demo.url}api/todos/`)).json();
      now = { todos: todos.length, done: todos.filter((t) => t.done).length };
    },
    expect: (i) => `board${i}: ${now.todos} todos, ${now.done} done`,
  });
  console.log(`page load of ${SIZE} contexts, requests to Django: without versions ${without.requests}, with versions ${withVersions.requests}, ` +
    `with versions and every context changed between fetch and subscribe ${changed.requests}`);
  assert.equal(without.acks, SIZE);
  assert.ok(without.requests >= 2 * SIZE, `without versions every panel is refetched after its first ack: ${without.requests} requests`);
  assert.ok(withVersions.requests >= SIZE && withVersions.requests <= SIZE + LOAD_MARGIN,
    `with versions a load is one request per panel (at most ${SIZE} + ${LOAD_MARGIN}): ${withVersions.requests}`);
  const stale = changed.panels.filter((text, i) => text !== `board${i}: ${now.todos} todos, ${now.done} done`);
  assert.deepEqual(stale, [], `panels still showing data from before the change (${now.todos} todos now)`);
  assert.ok(changed.requests >= 2 * SIZE, `every panel changed after its fetch is refetched: ${changed.requests} requests`);
});
