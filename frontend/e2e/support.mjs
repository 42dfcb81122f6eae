// What the browser scripts that drive the real local run share (flows.mjs, self-service.mjs): steps
// and checks, screenshots at 1280 and 390 px, axe-core, signing in, Material selects, invite mails.
//
//   SCREENSHOT_DIR: where shoot() saves; MAIL_DIR: the mail catcher's folder, for inviteLink().
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { FLAGS } from './browser.mjs';

const env = process.env;
export const SHOTS = env.SCREENSHOT_DIR ?? '';
// Evaluated through the DevTools protocol, not added as a <script>: the app's Content-Security-Policy
// (script-src 'self') refuses an inline script tag, as it must, and the test runs under it.
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// Long enough for a cold 2-core CI machine running the other test folders at the same time (a CI
// run once needed more than 20 s); the pages answer in milliseconds when warm.
export const TIMEOUT_MS = 30_000;
// The web app must show a change made elsewhere within 5 s, without a reload (issue 11).
export const LIVE_MS = 5_000;

/** How many steps passed, and their names. */
export const progress = { passed: 0, results: [] };

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export async function step(name, fn) {
  const started = Date.now();
  await fn();
  progress.passed += 1;
  progress.results.push(name);
  console.log(`e2e: ok ${name} (${Date.now() - started} ms)`);
}

export async function shoot(page, name) {
  if (!SHOTS) return;
  for (const [width, height] of [
    [1280, 900],
    [390, 844],
  ]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

/** axe-core in the page: no serious or critical violation, at both widths. */
export async function accessible(page, name) {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    // Colours are judged once nothing fades in or out (a snack bar's entrance, a dialog's exit).
    await page.waitForFunction(() =>
      document.getAnimations().every((a) => a.playState !== 'running'),
    );
    if (!(await page.evaluate(() => 'axe' in window))) {
      await page.evaluate(AXE);
    }
    const violations = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const result = await axe.run(document, { resultTypes: ['violations'] });
      return result.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    });
    check(violations.length === 0, `axe on ${name} at ${width}px: ${violations.join('; ')}`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

export async function signIn(page, email, password, { filled = false } = {}) {
  await page.getByRole('heading', { level: 1, name: 'Sign in to gpulab' }).waitFor();
  const field = page.getByLabel('Email', { exact: true });
  if (filled) {
    check(
      (await field.inputValue()) === email,
      `the email is not filled in: ${await field.inputValue()}`,
    );
  } else {
    await field.fill(email);
  }
  if (filled) {
    // By keyboard alone: the email is filled in, Tab moves on to the password, Enter submits.
    await field.focus();
    await page.keyboard.press('Tab');
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await page.getByRole('button', { name: 'Log out' }).waitFor({ timeout: TIMEOUT_MS });
}

export async function choose(page, label, option) {
  await page.getByRole('combobox', { name: label, exact: true }).click();
  await page.getByRole('option', { name: option }).click();
}

export function inviteLink(email) {
  for (const name of readdirSync(env.MAIL_DIR).sort()) {
    const text = readFileSync(join(env.MAIL_DIR, name), 'utf8').replace(/=\r?\n/g, '');
    if (text.includes(`To: ${email}`) || text.includes(`<${email}>`)) {
      const match = text.match(/https?:\/\/[^\s"<>]+\/invite\/[A-Za-z0-9_\-=%]+/);
      if (match) return match[0];
    }
  }
  return null;
}

/**
 * Waits until the dialog just opened has put the focus in it (Material moves it to the first field
 * once the dialog has opened): text typed before that can land in the first field when the focus
 * arrives late on a loaded machine (seen: "Training x1024" for the name).
 */
export async function dialogOpened(page) {
  await page.getByRole('dialog').waitFor();
  await page.waitForFunction(() => document.activeElement?.closest('[role="dialog"]') !== null);
}

/** Waits for the open dialog to close; if it shows the server's refusal instead, fails with it. */
export async function dialogClosed(page) {
  const dialog = page.getByRole('dialog');
  await waitFor('the dialog to close', async () => {
    if ((await dialog.count()) === 0) return true;
    const refusal = dialog.getByRole('alert');
    if (await refusal.count()) {
      throw new Error(`the dialog stayed open: ${await refusal.first().innerText()}`);
    }
    return false;
  });
}

export async function waitFor(what, probe, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * After a failure: a screenshot of each page (failure-<who>.png) and what each showed, in words, so
 * that a failure on CI can be read without the screenshots.
 */
export async function showPages(named) {
  for (const [who, page] of named) {
    if (SHOTS) {
      await page
        .screenshot({ path: join(SHOTS, `failure-${who}.png`), fullPage: true })
        .catch(() => {});
    }
    const text = await page
      .evaluate(() => {
        // Content hidden from assistive technology (an overlay left open) hides it from getByRole.
        const hidden = [...document.body.children]
          .filter((e) => e.getAttribute('aria-hidden') === 'true' || e.hasAttribute('inert'))
          .map((e) => e.tagName.toLowerCase());
        return `[hidden from the accessibility tree: ${hidden.join(', ') || 'nothing'}]\n${document.body.innerText}`;
      })
      .catch((e) => `(unreadable: ${e.message})`);
    console.error(`e2e: the ${who} page at ${page.url()} showed:\n${text.slice(0, 3000)}`);
  }
}

/**
 * Runs `scenario(browser)` in Debian's chromium, prints `e2e: <passed> passed, <failed> failed` (what
 * the pytest runners look for) and exits with its status.
 */
export async function runInChromium(scenario) {
  if (SHOTS && !existsSync(SHOTS)) mkdirSync(SHOTS, { recursive: true });
  let failed = 0;
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    args: FLAGS,
  });
  try {
    await scenario(browser);
  } catch (err) {
    failed = 1;
    console.error(`e2e: FAILED after ${progress.passed} steps: ${err.message}`);
  } finally {
    await browser.close();
  }
  console.log(`e2e: ${progress.passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
