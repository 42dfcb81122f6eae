// Shared by the browser scripts: Debian's chromium driven by playwright-core (never a browser
// download), a screenshot whatever the outcome, and the plain "N passed, N failed" closing line.
import { chromium } from 'playwright-core';

export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * What the Content-Security-Policy refuses on this page (an inline script or handler, a foreign
 * origin), collected into the returned list. Chromium reports each refusal on the console only,
 * and a refused stylesheet handler breaks no script, so nothing else would notice: every browser
 * test fails on one.
 */
export function recordCspRefusals(page, into = []) {
  page.on('console', (msg) => {
    if (msg.text().includes('Content Security Policy')) {
      into.push(msg.text());
    }
  });
  return into;
}

export async function runInBrowser(name, scenario) {
  try {
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: FLAGS,
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const refused = recordCspRefusals(page);
      let failure = null;
      try {
        await scenario(page);
        if (refused.length > 0) {
          throw new Error(`the Content-Security-Policy refused: ${refused.join('; ')}`);
        }
      } catch (err) {
        failure = err;
      }
      // A screenshot of a failure is the most useful one, so take it either way.
      if (process.env.SCREENSHOT) {
        await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true }).catch((err) => {
          console.error(`e2e: could not save screenshot: ${err.message}`);
        });
      }
      if (failure) {
        throw failure;
      }
    } finally {
      await browser.close();
    }
  } catch (err) {
    console.error(`e2e: ${name} FAILED: ${err.message}`);
    console.log('e2e: 0 passed, 1 failed');
    process.exit(1);
  }
  console.log('e2e: 1 passed, 0 failed');
}
