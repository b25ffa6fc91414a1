// Drives an already running Chromium over the DevTools protocol (playwright-core, no browser
// download): opens START, fills the test provider's sign-in form with LOGIN/PASSWORD, and
// waits until the browser is back on START's origin. Prints one JSON line on stdout:
//   {"url": "...", "status": 200, "body": "..."}
// Usage: node chromium-sign-in.mjs CDP_URL START LOGIN PASSWORD [SCREENSHOT.png]
import { chromium } from 'playwright-core';

const [cdpUrl, start, login, password, screenshot] = process.argv.slice(2);
if (!cdpUrl || !start || !login || !password) {
  console.error('usage: node chromium-sign-in.mjs CDP_URL START LOGIN PASSWORD [SCREENSHOT.png]');
  process.exit(2);
}
const origin = new URL(start).origin;

const browser = await chromium.connectOverCDP(cdpUrl, { timeout: 60_000 });
try {
  const context = browser.contexts()[0] ?? (await browser.newContext());
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  await page.goto(start);
  await page.waitForSelector('#login');
  await page.fill('#login', login);
  await page.fill('#password', password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(origin) && r.status() < 300 && r.request().resourceType() === 'document'),
    page.click('#submit'),
  ]);
  await page.waitForLoadState('load');
  if (screenshot) await page.screenshot({ path: screenshot });
  const body = await page.evaluate(() => document.body.innerText);
  console.log(JSON.stringify({ url: page.url(), status: response.status(), body }));
} finally {
  await browser.close();
}
