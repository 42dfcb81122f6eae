// Self-service and fair use in Debian's headless Chromium, against a real local run and a real agent
// (tests/test_web_self_service_e2e.py starts both and passes the settings below). Controls are found
// by their visible labels and roles, as in flows.mjs; every new page is checked with axe-core and
// photographed at 1280 and 390 px.
//
//   BASE_URL ADMIN_EMAIL ADMIN_PASSWORD MAIL_DIR HANDOFF_DIR PUBLIC_KEY_A KEY_FINGERPRINT_A
//   PUBLIC_KEY_B KEY_FINGERPRINT_B [SCREENSHOT_DIR] [CHROMIUM] node e2e/self-service.mjs
//
// The scenario: the admin adds a node (8 GPUs, HANDOFF_DIR as in flows.mjs), makes an `auto`
// Environment on it, a group and a quota for user A. A asks for 1 GPU and gets it at once (its
// access on My GPUs), extends it; B asks for 8 and is queued at position 1; A releases and B's
// request turns granted within 10 s. The Environment turns `approval`: A asks, the admin approves in
// the inbox, A sees it granted; a second ask is denied with a reason. Last, the admin's Usage page:
// its CSV download must equal GET /api/v1/usage with `Accept: text/csv` for the same range.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { recordCspRefusals } from './browser.mjs';
import {
  TIMEOUT_MS,
  accessible,
  check,
  choose,
  dialogClosed,
  dialogOpened,
  inviteLink,
  runInChromium,
  shoot,
  showPages,
  signIn,
  step,
  waitFor,
} from './support.mjs';

const env = process.env;
const required = [
  'BASE_URL',
  'ADMIN_EMAIL',
  'ADMIN_PASSWORD',
  'MAIL_DIR',
  'HANDOFF_DIR',
  'PUBLIC_KEY_A',
  'KEY_FINGERPRINT_A',
  'PUBLIC_KEY_B',
  'KEY_FINGERPRINT_B',
];
const missing = required.filter((key) => !env[key]);
if (missing.length > 0) {
  console.error(`e2e: set ${missing.join(', ')}`);
  process.exit(2);
}
const BASE = env.BASE_URL.replace(/\/$/, '');
// A queued request turns granted once GPUs are free: the scheduler grants at once, and My requests
// asks again every 5 s, so 10 s covers one missed refresh (issue 13).
const GRANT_MS = 10_000;

const suffix = Date.now().toString(36);
const HOST = `gpu-self-${suffix}`;
const PASSWORD = 'correct horse battery staple';
const A = { email: `ada-${suffix}@lab.example`, name: 'Ada Lovelace' };
const B = { email: `bob-${suffix}@lab.example`, name: 'Bob Babbage' };
const ENV_NAME = `Self-service ${suffix}`;
const GROUP_NAME = `Physics ${suffix}`;
const DENY_REASON = 'The course has ended.';

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Follows a link of the main navigation, by its exact name ("Requests" is in "My requests" too). */
async function nav(page, name) {
  await page
    .getByRole('navigation', { name: 'Main' })
    .getByRole('link', { name, exact: true })
    .click();
  await page.getByRole('heading', { level: 1, name, exact: true }).waitFor();
}

/** The admin invites `person`, who accepts from the mail in their own browser and adds a key. */
async function onboard(browser, admin, person, publicKey, fingerprint) {
  await nav(admin, 'Users');
  await admin.getByLabel('Email', { exact: true }).fill(person.email);
  await admin.getByRole('button', { name: 'Send invite' }).click();
  await admin.getByText(person.email).first().waitFor();
  const link = await waitFor(`the invite mail to ${person.email}`, async () =>
    inviteLink(person.email),
  );

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  await page.goto(link, { waitUntil: 'load' });
  await page.getByRole('heading', { level: 1, name: 'Join gpulab' }).waitFor();
  await page.getByLabel('Your name', { exact: true }).fill(person.name);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(/\/login\?/, { timeout: TIMEOUT_MS });
  await signIn(page, person.email, PASSWORD, { filled: true });
  await nav(page, 'SSH keys');
  await page.getByLabel('Public key', { exact: true }).fill(publicKey);
  await page.getByRole('button', { name: 'Add key' }).click();
  await page.getByText(fingerprint).first().waitFor();
  return page;
}

/** Fills the Request GPUs form and sends it; resolves with the result's heading. */
async function requestGpus(page, gpus, hours, { estimate, screenshot } = {}) {
  await nav(page, 'Request GPUs');
  const another = page.getByRole('button', { name: 'Make another request' });
  if (await another.count()) await another.click();
  await choose(page, 'Environment', new RegExp(`^${escape(ENV_NAME)}`));
  await page.getByLabel('GPUs', { exact: true }).fill(String(gpus));
  await page.getByLabel('Hours', { exact: true }).fill(String(hours));
  if (estimate) {
    await page.getByTestId('estimate').getByText(estimate).waitFor();
  }
  if (screenshot) {
    await accessible(page, screenshot);
    await shoot(page, screenshot);
  }
  await page.getByRole('button', { name: 'Submit request' }).click();
  const result = page.getByTestId('request-result');
  await result.waitFor();
  return (await result.getByRole('heading', { level: 2 }).innerText()).trim();
}

/** On My GPUs: releases the assignment on HOST (the only one), confirming in the dialog. */
async function releaseAll(page) {
  await nav(page, 'My GPUs');
  const release = page.getByRole('button', { name: 'Release', exact: true });
  await release.first().waitFor();
  await release.first().click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Release GPUs' }).click();
  await page.locator('article[data-assignment-id]').first().waitFor({ state: 'detached' });
}

/** On My requests: waits until `count` requests show `status`. */
async function waitForStatus(page, status, count, timeoutMs = GRANT_MS) {
  await nav(page, 'My requests');
  const started = Date.now();
  await waitFor(
    `${count} request(s) ${status} on My requests`,
    async () =>
      (await page
        .getByTestId('request-status')
        .filter({ hasText: new RegExp(`^${status}$`) })
        .count()) >= count,
    timeoutMs,
  );
  console.log(`e2e: ${status} on My requests after ${Date.now() - started} ms`);
}

async function scenario(browser) {
  const adminContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const admin = await adminContext.newPage();
  const errors = [];
  const refused = [];
  const watch = (page) => {
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (err) => errors.push(err.message));
    recordCspRefusals(page, refused);
  };
  watch(admin);
  let a = admin;
  let b = admin;

  try {
    await step('the admin signs in and adds a node, which comes online with 8 GPUs', async () => {
      await admin.goto(`${BASE}/login`, { waitUntil: 'load' });
      await signIn(admin, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
      await nav(admin, 'Nodes');
      await admin.getByRole('button', { name: 'Add node' }).click();
      const dialog = admin.getByRole('dialog');
      await dialog.getByLabel('Host name').fill(HOST);
      await dialog.getByLabel('Management IP').fill('10.0.0.31');
      await dialog.getByRole('button', { name: 'Create node' }).click();
      await dialog.getByRole('heading', { name: 'Install the agent' }).waitFor();
      const command = (
        await dialog
          .locator('pre, code')
          .filter({ hasText: 'install-agent.sh' })
          .first()
          .innerText()
      ).trim();
      await dialog.getByRole('button', { name: 'Done' }).click();
      writeFileSync(join(env.HANDOFF_DIR, 'install-command.txt'), command);
      const map = admin.getByRole('list', { name: `GPU map of ${HOST}` });
      await waitFor(
        '8 GPUs in the map',
        async () => (await map.getByRole('listitem').count()) === 8,
        45_000,
      );
    });

    await step('the admin makes an auto self-service Environment on the node', async () => {
      await nav(admin, 'Environments');
      await admin.getByRole('button', { name: 'New Environment' }).click();
      await dialogOpened(admin);
      await admin.getByLabel('Name', { exact: true }).fill(ENV_NAME);
      // The agent reports this machine's CPUs and memory (2 cores on CI): ask for little.
      await admin.getByLabel('Default CPUs').fill('1');
      await admin.getByLabel('Default RAM (MiB)').fill('1024');
      await choose(admin, 'Self-service', /^auto/);
      await admin.getByLabel('Longest request (hours)').fill('24');
      await admin.getByRole('button', { name: 'Create Environment' }).click();
      await dialogClosed(admin);
      await admin.getByRole('heading', { level: 2, name: ENV_NAME, exact: true }).waitFor();
      await choose(admin, `Node to attach to ${ENV_NAME}`, HOST);
      await admin.getByRole('button', { name: `Attach node to ${ENV_NAME}` }).click();
      await admin.getByRole('button', { name: `Detach ${HOST} from ${ENV_NAME}` }).waitFor();
      await admin
        .locator(`article[data-environment="${ENV_NAME}"]`)
        .getByText('auto: Users request GPUs and get them at once when free, else they queue.')
        .waitFor();
    });

    await step('two users join, each with an SSH key', async () => {
      a = await onboard(browser, admin, A, env.PUBLIC_KEY_A, env.KEY_FINGERPRINT_A);
      watch(a);
      b = await onboard(browser, admin, B, env.PUBLIC_KEY_B, env.KEY_FINGERPRINT_B);
      watch(b);
    });

    await step('the admin makes a group with A in it', async () => {
      await nav(admin, 'Groups');
      await admin.getByRole('button', { name: 'New group' }).click();
      const dialog = admin.getByRole('dialog');
      await dialog.getByLabel('Name', { exact: true }).fill(GROUP_NAME);
      await dialog.getByLabel('Description', { exact: true }).fill('The physics lab');
      await dialog.getByRole('button', { name: 'Create group' }).click();
      await dialogClosed(admin);
      await admin.getByRole('heading', { level: 3, name: GROUP_NAME, exact: true }).waitFor();
      await choose(admin, `Add to ${GROUP_NAME}`, A.email);
      await admin.getByRole('button', { name: `Add member to ${GROUP_NAME}` }).click();
      await admin.getByRole('button', { name: `Remove ${A.email} from ${GROUP_NAME}` }).waitFor();
      await accessible(admin, 'groups');
      await shoot(admin, 'groups');
    });

    await step("the admin sets A's quota: 2 GPUs, 24 hours, 100 GPU-hours a month", async () => {
      await nav(admin, 'Quotas');
      await choose(admin, 'User or group', A.email);
      await admin.getByLabel('Most GPUs at once', { exact: true }).fill('2');
      await admin.getByLabel('Longest request (hours)', { exact: true }).fill('24');
      await admin.getByLabel('GPU-hours per month', { exact: true }).fill('100');
      await admin.getByRole('button', { name: 'Save quota' }).click();
      const row = admin.getByRole('row').filter({ hasText: A.email });
      await row.getByRole('cell', { name: '0 of 2', exact: true }).waitFor();
      await accessible(admin, 'quotas');
      await shoot(admin, 'quotas');
    });

    await step('A asks for 1 GPU, gets it at once, and finds the access on My GPUs', async () => {
      await nav(a, 'Request GPUs');
      await a.getByTestId('quota-left').getByText('0 of 2 (2 left)').waitFor();
      const outcome = await requestGpus(a, 1, 2, { estimate: 'starts now', screenshot: 'request' });
      check(outcome === 'Granted', `A's request: ${outcome}`);
      await a.getByRole('link', { name: 'See how to connect on My GPUs' }).click();
      await a.getByRole('heading', { level: 1, name: 'My GPUs' }).waitFor();
      await a.locator('pre').filter({ hasText: 'ProxyJump' }).first().waitFor();
      await a.getByText(HOST).first().waitFor();
    });

    await step('A extends the assignment by an hour', async () => {
      await a.getByLabel('Extra hours', { exact: true }).fill('1');
      await a.getByRole('button', { name: 'Extend', exact: true }).click();
      await a.getByText('Extended.', { exact: false }).waitFor();
      await accessible(a, 'my-gpus-self-service');
      await shoot(a, 'my-gpus-self-service');
    });

    await step('B asks for more GPUs than are free and is queued at position 1', async () => {
      const outcome = await requestGpus(b, 8, 1, { estimate: 'position 1' });
      check(outcome === 'Queued', `B's request: ${outcome}`);
      await b.getByText('Your request is queued at position 1.', { exact: false }).waitFor();
      await nav(b, 'My requests');
      await b.getByTestId('request-status').getByText('queued', { exact: true }).waitFor();
      await b.getByText('Position 1,', { exact: false }).waitFor();
      await accessible(b, 'my-requests');
      await shoot(b, 'my-requests');
    });

    await step("A releases; B's request turns granted within 10 s, without a reload", async () => {
      await releaseAll(a);
      // B's page is still open on My requests: it must follow by itself.
      const started = Date.now();
      await waitFor(
        "B's request granted",
        async () =>
          (await b
            .getByTestId('request-status')
            .filter({ hasText: /^granted$/ })
            .count()) === 1,
        GRANT_MS,
      );
      console.log(`e2e: B's request granted ${Date.now() - started} ms after A released`);
      await releaseAll(b);
    });

    await step('the Environment turns to approval; the admin approves A in the inbox', async () => {
      await nav(admin, 'Environments');
      await admin.getByRole('button', { name: `Edit ${ENV_NAME}` }).click();
      await choose(admin, 'Self-service', /^approval/);
      await admin.getByRole('button', { name: 'Save changes' }).click();
      await dialogClosed(admin);

      const outcome = await requestGpus(a, 1, 1);
      check(outcome === 'Sent for approval', `A's request: ${outcome}`);
      await a.getByText('Your request waits for an admin, who decides.').waitFor();

      await nav(admin, 'Requests');
      const approve = admin.getByRole('button', { name: `Approve the request of ${A.email}` });
      await approve.waitFor();
      await accessible(admin, 'admin-requests');
      await shoot(admin, 'admin-requests');
      await approve.click();
      await waitForStatus(a, 'granted', 2);
      await releaseAll(a);
    });

    await step('the admin denies a request with a reason, which A reads', async () => {
      const outcome = await requestGpus(a, 1, 1);
      check(outcome === 'Sent for approval', `A's request: ${outcome}`);
      await nav(admin, 'Requests');
      await admin.getByRole('button', { name: `Deny the request of ${A.email}` }).click();
      const dialog = admin.getByRole('dialog');
      await dialog.getByLabel('Reason', { exact: true }).fill(DENY_REASON);
      await dialog.getByRole('button', { name: 'Deny request' }).click();
      await dialogClosed(admin);
      await waitForStatus(a, 'denied', 1);
      await a.getByText(`Reason: ${DENY_REASON}`).waitFor();
    });

    await step('the usage CSV the page downloads is what GET /usage says as CSV', async () => {
      await nav(admin, 'Usage');
      await admin.getByRole('row').filter({ hasText: A.email }).first().waitFor();
      await admin.getByRole('img', { name: /GPU-hours over time/ }).waitFor();
      await accessible(admin, 'usage');
      await shoot(admin, 'usage');

      const from = await admin.getByLabel('From', { exact: true }).inputValue();
      const until = await admin.getByLabel('Until', { exact: true }).inputValue();
      const [download] = await Promise.all([
        admin.waitForEvent('download'),
        admin.getByRole('button', { name: 'Download CSV' }).click(),
      ]);
      const name = download.suggestedFilename();
      check(name === `gpulab-usage-${from}-${until}.csv`, `the CSV file is named ${name}`);
      const saved = readFileSync(await download.path(), 'utf8');
      const range = admin.getByTestId('usage-range').locator('time');
      const query = new URLSearchParams({
        from: await range.nth(0).getAttribute('datetime'),
        until: await range.nth(1).getAttribute('datetime'),
        group_by: 'user',
      });
      const direct = await admin.evaluate(async (q) => {
        const reply = await fetch(`/api/v1/usage?${q}`, { headers: { Accept: 'text/csv' } });
        return reply.text();
      }, query.toString());
      check(
        saved.startsWith('key_id,key_name,gpu_hours,assignments'),
        `the CSV: ${saved.slice(0, 200)}`,
      );
      check(saved.includes(A.email) && saved.includes(B.email), `the CSV lacks A or B: ${saved}`);
      check(saved === direct, `the download differs from GET /usage:\n${saved}\n---\n${direct}`);
    });

    check(errors.length === 0, `uncaught errors in the pages: ${errors.join('; ')}`);
    check(refused.length === 0, `the Content-Security-Policy refused: ${refused.join('; ')}`);
  } catch (err) {
    await showPages([
      ['admin', admin],
      ['a', a],
      ['b', b],
    ]);
    throw err;
  }
}

await runInChromium(scenario);
