// The quickstart's last step in a real browser: `node quickstart-tabs.mjs SITE`
// opens SITE (the page django/QUICKSTART.md builds, served by runserver) in
// two tabs of Debian's Chromium, adds a note in each through the page's own
// form, and waits for the other tab to show it. Exits 1 (with what each tab
// shows) when a tab does not within 5 s. Run by django/tests/test_quickstart.py
// when MIZAN_QUICKSTART_TABS names this script (tests/e2e/ci-test does).

import { chromium } from 'playwright-core';

const site = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding'],
  timeout: 30_000,
});
const errors = [];
try {
  const context = await browser.newContext();
  const open = async (name) => {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
    // live once the hub acked the page's subscribe to `notes`
    const subscribed = new Promise((resolve) =>
      page.on('websocket', (ws) => ws.on('framereceived', (f) => String(f.payload).includes('"subscribed":true') && resolve())));
    await page.goto(site, { timeout: 15_000 });
    await Promise.race([subscribed, new Promise((_, reject) => setTimeout(() => reject(new Error(`${name}: no subscription within 10 s ${errors}`)), 10_000))]);
    return page;
  };
  const [a, b] = [await open('tab A'), await open('tab B')];
  const notes = (page) => page.$$eval('#notes li', (els) => els.map((e) => e.textContent));
  for (const [from, to, text] of [[a, b, 'written in A'], [b, a, 'written in B']]) {
    await from.fill('input[name=text]', text);
    const t0 = Date.now();
    await from.click('button');
    const shown = await to
      .waitForFunction((t) => [...document.querySelectorAll('#notes li')].some((e) => e.textContent === t), text, { timeout: 5000 })
      .then(() => true, () => false);
    if (!shown) throw new Error(`"${text}" not shown by the other tab within 5 s; it shows ${JSON.stringify(await notes(to))} ${errors}`);
    console.log(`"${text}" shown by the other tab ${Date.now() - t0} ms after the click`);
  }
  if (errors.length) throw new Error(errors.join('\n'));
} catch (e) {
  console.error(String(e?.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
