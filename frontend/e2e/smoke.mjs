// Real-browser smoke test: opens BASE_URL in Debian's headless Chromium and checks that the shell
// renders and the health panel shows the five services from the live /api/v1/healthz.
//
//   BASE_URL=http://127.0.0.1:8080 [SCREENSHOT=/tmp/smoke.png] [CHROMIUM=/usr/bin/chromium] node e2e/smoke.mjs
//
// Uses playwright-core only as a driver: the browser is the system one, never a downloaded build.
import { runInBrowser } from './browser.mjs';

const SERVICES = ['identity', 'pki', 'inventory', 'scheduler', 'notify'];
// Generous for a cold gateway on a 2-core CI machine; a healthy one answers in milliseconds.
const TIMEOUT_MS = 20_000;

const baseUrl = process.env.BASE_URL;
if (!baseUrl) {
  console.error('e2e: set BASE_URL to the gateway, e.g. BASE_URL=http://127.0.0.1:8080');
  process.exit(2);
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function smoke(page) {
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));

  const response = await page.goto(baseUrl, { waitUntil: 'load', timeout: TIMEOUT_MS });
  check(response?.ok(), `GET ${baseUrl} answered ${response?.status()}`);
  // The app must work under the policy the deployment sends (docs/api.md): scripts only from itself
  // (runInBrowser fails the run on anything the policy refused).
  const csp = response.headers()['content-security-policy'] ?? '';
  check(
    csp.split(';').some((d) => d.trim() === "script-src 'self'"),
    `the page came without script-src 'self' in its Content-Security-Policy (${JSON.stringify(csp)})`,
  );

  // The panel settles on "ready" (a healthz reply, ok or degraded) or "error" (no usable reply).
  const panel = page.locator(
    'app-health-panel section[data-state="ready"], app-health-panel section[data-state="error"]',
  );
  await panel.first().waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const state = await panel.first().getAttribute('data-state');
  if (state !== 'ready') {
    const alert = await page.locator('app-health-panel [role=alert]').innerText();
    throw new Error(`health panel shows an error: ${alert.replace(/\s+/g, ' ').trim()}`);
  }

  const title = await page.title();
  check(
    title.includes('gpulab'),
    `page title is ${JSON.stringify(title)}, expected it to name gpulab`,
  );
  const brand = (await page.locator('header .brand').innerText()).trim();
  check(brand === 'gpulab', `header shows ${JSON.stringify(brand)}, expected "gpulab"`);

  const overall = (await page.locator('[data-testid=overall]').innerText()).trim();
  check(['ok', 'degraded'].includes(overall), `overall status is ${JSON.stringify(overall)}`);

  const rows = [];
  for (const name of SERVICES) {
    const row = page.locator(`[data-service="${name}"]`);
    check(await row.isVisible(), `service ${name} is not shown`);
    const shownName = (await row.locator('.service__name').innerText()).trim();
    check(shownName === name, `service row ${name} shows the name ${JSON.stringify(shownName)}`);
    rows.push(`${name}=${(await row.locator('.service__state').innerText()).trim()}`);
  }
  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join('; ')}`);

  console.log(`e2e: overall ${overall}; ${rows.join(' ')}`);
}

await runInBrowser('smoke', smoke);
