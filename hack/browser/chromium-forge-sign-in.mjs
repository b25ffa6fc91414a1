// Drives an already running Chromium over the DevTools protocol (playwright-core, no browser
// download) through a sign-in at the Forge (Gitea): opens START, is sent to Gitea's sign-in
// form, fills it with LOGIN/PASSWORD, sets NEW_PASSWORD when Gitea asks for a new one (an
// account made with a one-time password), and waits until the browser is back on START's
// origin (authorizing the application when Gitea asks); then opens START again with the session
// it got. Prints one JSON line on stdout:
//   {"url": "...", "status": 200, "body": "...", "changedPassword": true, "authorized": true,
//    "forgePages": [...]}
// Usage: node chromium-forge-sign-in.mjs CDP_URL START LOGIN PASSWORD NEW_PASSWORD|- [SCREENSHOT.png]
import { chromium } from 'playwright-core';

const [cdpUrl, start, login, password, newPassword, screenshot] = process.argv.slice(2);
if (!cdpUrl || !start || !login || !password || !newPassword) {
  console.error('usage: node chromium-forge-sign-in.mjs CDP_URL START LOGIN PASSWORD NEW_PASSWORD|- [SCREENSHOT.png]');
  process.exit(2);
}
const origin = new URL(start).origin;

const browser = await chromium.connectOverCDP(cdpUrl, { timeout: 60_000 });
try {
  const context = browser.contexts()[0] ?? (await browser.newContext());
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  // Every page of the Forge the browser is shown (paths only), to tell what Gitea asked for.
  const forgePages = [];
  page.on('framenavigated', (frame) => {
    const url = new URL(frame.url());
    if (frame === page.mainFrame() && url.origin !== origin) forgePages.push(url.pathname);
  });

  await page.goto(start);
  await page.waitForSelector('#user_name');
  await page.fill('#user_name', login);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('form[action*="/user/login"] button.primary')]);

  let changedPassword = false;
  if (new URL(page.url()).pathname.endsWith('/user/settings/change_password')) {
    if (newPassword === '-') throw new Error(`the Forge asks for a new password: ${page.url()}`);
    await page.fill('#password', newPassword);
    await page.fill('#retype', newPassword);
    await Promise.all([page.waitForNavigation(), page.click('form[action*="change_password"] button.primary')]);
    changedPassword = true;
  }
  // Gitea asks each person once per application to authorize it (it skips the question only
  // when a grant exists, even for a confidential client): the person agrees.
  let authorized = false;
  if (new URL(page.url()).pathname.endsWith('/login/oauth/authorize')) {
    await Promise.all([page.waitForNavigation(), page.click('#authorize-app')]);
    authorized = true;
  }
  try {
    await page.waitForURL((u) => u.origin === origin);
  } catch (e) {
    // Say where the browser got stuck (the page's path and text, never a password).
    const text = await page.evaluate(() => document.body.innerText).catch(() => '');
    console.error(`not back on ${origin}; stuck at ${new URL(page.url()).pathname} after ${forgePages.join(' -> ')}:\n${text.slice(0, 800)}`);
    throw e;
  }
  await page.waitForLoadState('load');
  // The signed-in session, on the page asked for.
  const response = await page.goto(start);
  if (screenshot) await page.screenshot({ path: screenshot });
  const body = await page.evaluate(() => document.body.innerText);
  console.log(JSON.stringify({ url: page.url(), status: response.status(), body, changedPassword, authorized, forgePages }));
} finally {
  await browser.close();
}
