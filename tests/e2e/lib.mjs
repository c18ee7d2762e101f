// Process helpers for the end-to-end test: redis-server, the hub and the
// Django demo on free ports of 127.0.0.1, each in its own process group with
// its output in artifacts/, every wait bounded, everything killed on exit.

import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const HERE = fileURLToPath(new URL('.', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// One directory per test file run by ci-test (MH_E2E_ARTIFACTS), emptied when it starts.
export const ARTIFACTS = process.env.MH_E2E_ARTIFACTS ? join(HERE, process.env.MH_E2E_ARTIFACTS) : join(HERE, 'artifacts');
export const HUB_BIN = process.env.MH_HUB_BIN || join(ROOT, 'build', 'bin', 'mizan-hub');

const live = new Set();
const dirs = [];

// Every run starts with a fresh artifacts/. `pids` lists this process and the
// process groups it starts, so that ci-test can kill leftovers by id should
// this process itself be killed before its handlers run.
rmSync(ARTIFACTS, { recursive: true, force: true });
mkdirSync(ARTIFACTS, { recursive: true });
const PIDS = join(ARTIFACTS, 'pids');
appendFileSync(PIDS, `pid ${process.pid}\n`);

function killGroup(p, signal) {
  try {
    process.kill(-p.pid, signal); // the whole group (run execs python; nothing else lingers)
  } catch {
    try {
      p.kill(signal);
    } catch {
      /* gone */
    }
  }
}

process.on('exit', () => {
  for (const p of live) killGroup(p, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
// A signal (ci-test's timeout, Ctrl-C) would skip 'exit' handlers: exit instead.
for (const [sig, n] of [['SIGHUP', 1], ['SIGINT', 2], ['SIGTERM', 15]]) process.on(sig, () => process.exit(128 + n));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir(name) {
  const d = mkdtempSync(join(tmpdir(), `mizan-e2e-${name}-`));
  dirs.push(d);
  return d;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function httpGet(port, path) {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

const exited = (p) => p.exitCode !== null || p.signalCode !== null;

/** A started process: `name` for messages, its log file in artifacts/. */
export class Proc {
  constructor(name, cmd, args, { env = process.env, cwd = ROOT } = {}) {
    this.name = name;
    this.log = join(ARTIFACTS, `${name}.log`);
    const fd = openSync(this.log, 'a');
    this.p = spawn(cmd, args, { cwd, env, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    live.add(this.p);
    appendFileSync(PIDS, `group ${this.p.pid}\n`);
    this.gone = new Promise((r) => this.p.once('exit', r));
  }

  get alive() {
    return !exited(this.p);
  }

  tail(n = 2000) {
    try {
      return readFileSync(this.log, 'utf8').slice(-n);
    } catch {
      return '';
    }
  }

  /** Signals the process group and waits (SIGKILL after 5 s). */
  async stop(signal = 'SIGTERM') {
    if (this.alive) {
      killGroup(this.p, signal);
      await Promise.race([this.gone, sleep(5000)]);
      if (this.alive) {
        killGroup(this.p, 'SIGKILL');
        await Promise.race([this.gone, sleep(5000)]);
      }
    }
    live.delete(this.p);
  }

  /** Polls `check` until truthy, failing early if the process dies. */
  async until(what, check, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await check()) return;
      if (!this.alive) throw new Error(`${this.name} exited (${this.p.exitCode ?? this.p.signalCode}) before ${what}:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${what} within ${ms} ms:\n${this.tail()}`);
      await sleep(50);
    }
  }
}

export async function startRedis() {
  const port = await freePort();
  const dir = tempDir('redis');
  const p = new Proc('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--unixsocket', '', '--daemonize', 'no', '--loglevel', 'warning']);
  p.port = port;
  p.url = `redis://127.0.0.1:${port}/0`;
  await p.until('PONG', () => ping(port), 5000);
  return p;
}

function ping(port) {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => s.write('PING\r\n'));
    s.setTimeout(1000, () => s.destroy());
    s.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

/**
 * The real hub with --allow-anonymous (no auth yet), ready (/readyz 200) when
 * this resolves. `name` names its log (artifacts/NAME.log); `args` are added.
 */
export async function startHub(redisUrl, port, { name = 'hub', args = [] } = {}) {
  port ??= await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MIZAN_HUB_')));
  const p = new Proc(name, HUB_BIN, ['--listen', `127.0.0.1:${port}`, '--redis', redisUrl, '--allow-anonymous',
    '--canary-interval-ms', '100', '--canary-window', '2', '--drain-window', '0', '--redis-backoff-max-ms', '200', ...args], { env });
  p.port = port;
  await p.until('/readyz 200', async () => (await httpGet(port, '/readyz')).status === 200, 10_000);
  return p;
}

/** django/example/run on a free port, with its own SQLite file and registry. */
export async function startDemo({ redisUrl, hubPort }) {
  const port = await freePort();
  const dir = tempDir('demo');
  const env = {
    ...process.env,
    MIZAN_HUB_REDIS_URL: redisUrl,
    MIZAN_HUB_URL: `ws://127.0.0.1:${hubPort}/`,
    MIZAN_HUB_REGISTRY: join(dir, 'registry.json'),
    MIZAN_DEMO_DB: join(dir, 'db.sqlite3'),
    PYTHON: process.env.PYTHON || join(ROOT, '.venv', 'bin', 'python'),
    PYTHONUNBUFFERED: '1',
  };
  const p = new Proc('demo', join(ROOT, 'django', 'example', 'run'), [String(port)], { env });
  p.port = port;
  p.url = `http://127.0.0.1:${port}/`;
  await p.until('GET / 200', async () => (await httpGet(port, '/')).status === 200, 60_000);
  return p;
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
  // Every page stays live although only one can be "in front".
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

/** Debian's Chromium (no downloaded browser), headless, with a fresh profile named `name`. */
export function launchChromium(name, viewport) {
  return chromium.launchPersistentContext(tempDir(name), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 30_000,
  });
}
