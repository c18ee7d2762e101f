// The operator page (/ops/, issue 16 item 3) in a real browser -- Debian's
// Chromium, headless, driven by playwright-core -- against Redis and two real
// hubs on free ports of 127.0.0.1:
//
//   1. a known load: 5 WebSocket clients (3 on hub-a, 2 on hub-b, opened
//      from a browser page) subscribed to `todo` with list 1 or 2;
//   2. the page on hub-a's admin listener lists both hubs with their
//      connections; a trace of todo {"list": 1} is started from the page's
//      form; 5 invalidations are published through Redis;
//   3. the page shows 18 deliveries (12 on hub-a, 6 on hub-b), latency
//      quantiles, and the trace lists the 4 events that match the traced
//      scope (not the one for list 2) with each hub's receiver count;
//   4. a screenshot: artifacts-ops/ops.png (committed as ops-screenshot.png);
//   5. the page's Stop ends the trace on both hubs.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { ARTIFACTS, freePort, launchChromium, startHub, startRedis } from './lib.mjs';

let redis;
let hubA;
let hubB;
let context;
let load; // the page holding the WebSocket clients
let ops;  // the operator page
const consoleLog = [];

function publish(envelope) {
  return execFileSync('redis-cli', ['-p', String(redis.port), 'PUBLISH', 'mizan:events', JSON.stringify(envelope)],
    { encoding: 'utf8' }).trim();
}

const invalidate = (entry, version) =>
  publish({ v: 1, kind: 'invalidate', ts: Date.now(), invalidate: [entry], versions: { todo: version } });

before(async () => {
  redis = await startRedis();
  const adminA = await freePort();
  const adminB = await freePort();
  hubA = await startHub(redis.url, undefined, { name: 'hub-a', args: ['--hub-id', 'hub-a', '--admin-listen', `127.0.0.1:${adminA}`] });
  hubB = await startHub(redis.url, undefined, { name: 'hub-b', args: ['--hub-id', 'hub-b', '--admin-listen', `127.0.0.1:${adminB}`] });
  hubA.admin = adminA;
  hubB.admin = adminB;
  context = await launchChromium('chromium-ops', { width: 1280, height: 900 });
  load = context.pages()[0] ?? (await context.newPage());
  ops = await context.newPage();
  for (const [name, page] of [['load', load], ['ops', ops]]) {
    page.on('console', (m) => consoleLog.push(`${name} ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLog.push(`${name} pageerror: ${e.message}`));
  }
  // The clients live in a page served by hub-b's admin listener (any page will do).
  await load.goto(`http://127.0.0.1:${hubB.admin}/healthz`);
}, { timeout: 60_000 });

after(async () => {
  if (context) {
    await ops?.screenshot({ path: join(ARTIFACTS, 'ops-final.png'), fullPage: true }).catch(() => {});
    await context.close().catch(() => {});
  }
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(ARTIFACTS, 'console.log'), consoleLog.join('\n') + '\n');
  await hubA?.stop();
  await hubB?.stop();
  await redis?.stop();
});

const text = (sel) => ops.locator(sel).first().textContent();
const num = async (sel) => Number((await text(sel)).replace(/,/g, ''));

async function waitText(sel, want, ms = 8000) {
  await ops.waitForFunction(([s, w]) => document.querySelector(s)?.textContent === w, [sel, want], { timeout: ms });
}

test('the page lists both hubs with their connections', { timeout: 30_000 }, async () => {
  // 3 clients on hub-a subscribed to list 1; on hub-b one to list 1, one to list 2.
  const acked = await load.evaluate(async ([a, b]) => {
    const plan = [[a, 1], [a, 1], [a, 1], [b, 1], [b, 2]];
    window.clients = [];
    const subscribed = plan.map(([port, list], i) => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
      const c = { ws, frames: [] };
      window.clients.push(c);
      ws.onerror = () => reject(new Error(`client ${i} failed`));
      ws.onmessage = (ev) => {
        const f = JSON.parse(ev.data);
        if (f.welcome) ws.send(JSON.stringify({ action: 'subscribe', context: 'todo', params: { list }, ref: `s${i}` }));
        else if (f.subscribed) resolve(true);
        else c.frames.push(f);
      };
    }));
    return (await Promise.all(subscribed)).length;
  }, [hubA.port, hubB.port]);
  assert.equal(acked, 5);

  await ops.goto(`http://127.0.0.1:${hubA.admin}/ops/`, { timeout: 15_000 });
  await waitText('#hub-count', '2');
  await waitText('#total-connections', '5');
  assert.equal(await text('#served-by'), 'hub-a');
  assert.equal(await text('#hubs tr[data-hub="hub-a"] td[data-k="connections"]'), '3');
  assert.equal(await text('#hubs tr[data-hub="hub-b"] td[data-k="connections"]'), '2');
  await waitText('#contexts tr[data-name="todo"] td[data-k="subs"]', '5');
  assert.equal(await text('#contexts tr[data-name="todo"] td[data-k="keys"]'), '3'); // list 1 on both hubs, list 2 on b
});

test('deliveries, latency and a cross-hub trace after a known load', { timeout: 40_000 }, async () => {
  await ops.selectOption('#trace-kind', 'context');
  await ops.fill('#trace-name', 'todo');
  await ops.fill('#trace-params', '{"list": 1}');
  await ops.click('#trace-start');
  await ops.waitForFunction(() => document.body.dataset.trace === '{"context":"todo","params":{"list":"1"}}', null, { timeout: 5000 });
  // both hubs follow the trace (hub-b reads it from Redis within a second)
  await waitText('#hubs tr[data-hub="hub-a"] td[data-k="tracing"]', '1');
  await waitText('#hubs tr[data-hub="hub-b"] td[data-k="tracing"]', '1');

  // M = 5 events: list 1 three times, list 2 once, then every list
  for (const n of [1, 2, 3]) invalidate({ context: 'todo', params: { list: '1' } }, `e1:${n}`);
  invalidate({ context: 'todo', params: { list: '2' } }, 'e1:4');
  invalidate('todo', 'e1:5');
  // what the clients got: 4 frames on each list-1 client, 2 on the list-2 one
  await load.waitForFunction(() => window.clients.map((c) => c.frames.length).join() === '4,4,4,4,2', null, { timeout: 10_000 });

  await waitText('#total-deliveries', '18');
  assert.equal(await text('#hubs tr[data-hub="hub-a"] td[data-k="deliveries"]'), '12');
  assert.equal(await text('#hubs tr[data-hub="hub-b"] td[data-k="deliveries"]'), '6');
  assert.equal(await num('#total-events'), 10); // 5 envelopes, received by each of the 2 hubs
  // every delivery was written to a socket: latency measured on both hubs
  const p50 = Number(await text('#hubs tr[data-hub="hub-a"] td[data-k="p50"]'));
  const p99 = Number(await text('#hubs tr[data-hub="hub-a"] td[data-k="p99"]'));
  assert.ok(p50 >= 0 && p99 >= p50 && p99 < 1000, `p50 ${p50} p99 ${p99}`);
  assert.notEqual(await text('#worst-p99'), '–');

  // The trace: the 4 events that match list 1 (e1:4 names list 2 only), newest first.
  await ops.waitForFunction(() => document.querySelectorAll('#trace-rows tr').length === 4 &&
    [...document.querySelectorAll('#trace-rows td[data-hub]')].every((td) => td.textContent !== '–'), null, { timeout: 8000 });
  const rows = await ops.$$eval('#trace-rows tr', (trs) => trs.map((tr) => ({
    version: tr.dataset.version,
    a: tr.querySelector('td[data-hub="hub-a"]').textContent,
    b: tr.querySelector('td[data-hub="hub-b"]').textContent,
    total: tr.querySelector('td[data-k="total"]').textContent,
    delay: Number(tr.querySelector('td[data-k="delay"]').textContent),
  })));
  // every envelope carried ts: each row says how long it took to reach the slowest hub
  for (const row of rows) {
    assert.ok(row.delay >= 0 && row.delay < 5000, JSON.stringify(row));
    delete row.delay;
  }
  assert.deepEqual(rows, [
    { version: 'e1:5', a: '3', b: '2', total: '5' },
    { version: 'e1:3', a: '3', b: '1', total: '4' },
    { version: 'e1:2', a: '3', b: '1', total: '4' },
    { version: 'e1:1', a: '3', b: '1', total: '4' },
  ]);
});

test('evidence: a screenshot of the page (artifacts-ops/ops.png)', { timeout: 20_000 }, async () => {
  // the plots over 5 minutes (what the page remembered), then back to the last minute
  await ops.selectOption('#plot-window', '300000');
  await ops.selectOption('#plot-window', '60000');
  // the plots with a sample taken a second after the load
  const seen = Number(await ops.evaluate(() => document.body.dataset.updated));
  await ops.waitForFunction((t) => Number(document.body.dataset.updated) > t + 1000, seen, { timeout: 5000 });
  const png = await ops.screenshot({ path: join(ARTIFACTS, 'ops.png'), fullPage: true });
  assert.ok(png.length > 10_000);
  // the page's own errors (the load page's /favicon.ico 404 is not one)
  const errors = consoleLog.filter((l) => /pageerror/.test(l) || /^ops error:/.test(l));
  assert.deepEqual(errors, []);
});

test('Stop ends the trace on both hubs', { timeout: 20_000 }, async () => {
  await ops.click('#trace-stop');
  await ops.waitForFunction(() => document.querySelector('#trace-status').textContent.startsWith('stopped tracing'), null, { timeout: 5000 });
  await waitText('#hubs tr[data-hub="hub-a"] td[data-k="tracing"]', '0');
  await waitText('#hubs tr[data-hub="hub-b"] td[data-k="tracing"]', '0');
});
