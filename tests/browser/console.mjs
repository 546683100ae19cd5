// Drives the web console in headless Chromium against a running gateway and simulator
// (started by tests/soak/console_browser.rs): log in with the API key, check the send form counts
// segments like the server, send a message whose text holds markup, wait until the list shows
// it delivered, search it by number, open it, and look at MO, reports and dead letters, on a
// laptop and on a phone. Screenshots go to the given directory.
//
//   CONSOLE_API_KEY=… node tests/browser/console.mjs <console-url> <screenshot-dir>
//
// Prints "console ok" and exits 0 when every check passes; exits 1 with the reason otherwise.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, shots] = process.argv.slice(2);
const key = process.env.CONSOLE_API_KEY;
const number = process.env.CONSOLE_NUMBER || '13800138123';
const moFrom = process.env.CONSOLE_MO_FROM || '13500135999';
if (!url || !shots || !key) {
  console.error('usage: CONSOLE_API_KEY=… node console.mjs <console-url> <screenshot-dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

// A hung browser must fail the test, not stall it.
const watchdog = setTimeout(() => {
  console.error('console test: no result after 150 s');
  process.exit(1);
}, 150_000);

const XSS_TEXT = 'hi <script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> & bye';

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Calls `probe` until it returns something truthy (at most `ms`). */
async function until(what, probe, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What the page reports about markup it refused or errors it threw. */
function watch(page, problems) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused key is an expected 401; a CSP refusal means markup got into the DOM as HTML.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
}

async function counter(page, text) {
  await page.fill('#send-text', text);
  return page.textContent('#send-count');
}

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const problems = [];
  try {
    const laptop = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await laptop.newPage();
    watch(page, problems);
    await page.goto(url);

    // The key: asked for, a wrong one refused, the right one kept for the tab.
    await page.waitForSelector('#login[open]');
    await page.fill('#login-key', 'not-the-key');
    await page.click('#login-form button[type=submit]');
    await until('the refusal', async () => /refused/.test(await page.textContent('#login-reason')));
    await page.fill('#login-key', key);
    await page.click('#login-form button[type=submit]');
    await until('the link card to say up', async () => (await page.textContent('#card-link')) === 'up');
    // Under it, the channel (K = 1, held here) and its one connection slot.
    await until('the channel line and its slot', async () =>
      (await page.textContent('#card-link-channels .channel-line')) === 'default: held here 1 / allowed 1' &&
      /^slot 0 up · \d+ \/ 16$/.test(await page.textContent('#card-link-channels .slot')));

    // The counter follows the server's rule (src/text/segment.rs).
    const cases = [
      ['a'.repeat(159), '1 segment · ASCII'],
      ['a'.repeat(160), '2 segments · ASCII'],
      ['短'.repeat(70), '1 segment · UCS2'],
      ['短'.repeat(71), '2 segments · UCS2'],
      ['短'.repeat(300), '5 segments · UCS2'],
      ['😀'.repeat(67), '3 segments · UCS2'], // a pair is never split: 33 per part
    ];
    for (const [text, expected] of cases) {
      const shown = await counter(page, text);
      // Anchored on the separator, so '2 segments' does not also match '12 segments'.
      check(shown.includes(`· ${expected}`), `counter for ${[...text].length} × ${text[0]}: "${shown}", expected "${expected}"`);
    }

    // The server agrees: the long text goes out in the segments the form announced.
    await page.fill('#send-to', number);
    await counter(page, '长'.repeat(300));
    await page.click('#send-button');
    await page.waitForSelector('#send-result li');
    const long = await page.textContent('#send-result li');
    check(long.includes('(5 segments)'), `server segments for 300 UCS2 characters: ${long}`);

    // A text with markup, sent through the form.
    await counter(page, XSS_TEXT);
    await page.click('#send-button');
    await until('the new answer', async () => {
      const li = await page.textContent('#send-result li');
      return li && !li.includes('(5 segments)');
    });
    const id = (await page.textContent('#send-result li button')).trim();
    check(id.length > 0, 'the answer shows the message id');
    await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });

    // Messages: search by number, wait for delivered.
    await page.click('.tabs button[data-tab=messages]');
    await page.fill('form[data-list=messages] input[name=to]', number);
    await page.click('form[data-list=messages] button[type=submit]');
    const row = page.locator('.list[data-list=messages] tbody tr', { hasText: id });
    await until('the message to show delivered', async () => {
      if ((await row.count()) === 1 && (await row.textContent()).includes('delivered')) return true;
      await page.click('.list[data-list=messages] .pager button:has-text("Refresh")');
      return false;
    });
    const rowText = await row.textContent();
    check(rowText.includes('<script>window.__xss = 1</script>'), `the row shows the markup as text: ${rowText}`);
    check(await page.locator('.list img').count() === 0, 'no <img> element came from a message');
    check(await page.evaluate(() => window.__xss) === undefined, 'no script from a message ran');
    const rows = await page.locator('.list[data-list=messages] tbody tr').count();
    check(rows === 2, `the search by number lists both messages sent to it, found ${rows}`);
    await page.screenshot({ path: join(shots, 'messages.png'), fullPage: true });

    // The message in full: its Msg_Id and report.
    await row.click();
    await page.waitForSelector('#detail[open] table.segments');
    const detail = await page.textContent('#detail-body');
    check(detail.includes('DELIVRD'), `the detail shows the report: ${detail}`);
    check(detail.includes('<script>'), 'the detail shows the text as text');
    await page.screenshot({ path: join(shots, 'message-detail.png') });
    await page.click('#detail-close');

    // MO by sender, reports by number, dead letters.
    await page.click('.tabs button[data-tab=mo]');
    await page.fill('form[data-list=mo] input[name=from]', moFrom);
    await page.click('form[data-list=mo] button[type=submit]');
    await until('the MO', async () => (await page.locator('.list[data-list=mo] tbody tr').count()) === 1);
    const mo = await page.textContent('.list[data-list=mo] tbody');
    check(mo.includes('<b>MO</b>'), `the MO text is shown as text: ${mo}`);
    await page.screenshot({ path: join(shots, 'mo.png'), fullPage: true });

    await page.click('.tabs button[data-tab=reports]');
    await page.fill('form[data-list=reports] input[name=to]', number);
    await page.click('form[data-list=reports] button[type=submit]');
    await until('the reports', async () => (await page.locator('.list[data-list=reports] tbody tr').count()) === 6);
    await page.screenshot({ path: join(shots, 'reports.png'), fullPage: true });

    await page.click('.tabs button[data-tab=dead]');
    await until('the dead letter', async () => (await page.locator('.list[data-list=dead] tbody tr').count()) >= 1);
    const dead = await page.textContent('.list[data-list=dead] tbody');
    check(dead.includes('not a valid mobile number'), `the dead letter's reason: ${dead}`);
    check(await page.evaluate(() => window.__xss) === undefined, 'no script from a dead letter ran');
    await page.screenshot({ path: join(shots, 'dead.png'), fullPage: true });

    // A phone: the key is already in this tab's session storage in real use; set it here.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await phone.addInitScript((k) => sessionStorage.setItem('cmpp-gateway-api-key', k), key);
    const small = await phone.newPage();
    watch(small, problems);
    await small.goto(url);
    await until('the cards on the phone', async () => (await small.textContent('#card-link')) === 'up');
    await small.screenshot({ path: join(shots, 'phone-overview.png'), fullPage: true });
    await small.click('.tabs button[data-tab=messages]');
    await until('the list on the phone', async () => (await small.locator('.list[data-list=messages] tbody tr').count()) > 0);
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the phone page scrolls sideways by ${overflow}px`);
    await small.screenshot({ path: join(shots, 'phone-messages.png'), fullPage: true });

    check(problems.length === 0, `the page reported problems:\n${problems.join('\n')}`);
  } catch (e) {
    for (const context of browser.contexts()) {
      for (const p of context.pages()) await p.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    }
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(() => {
  clearTimeout(watchdog);
  console.log(`console ok; screenshots in ${shots}`);
}, (e) => {
  clearTimeout(watchdog);
  console.error(`console test failed: ${e.message}`);
  process.exit(1);
});
