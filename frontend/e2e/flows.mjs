// Every flow of the mission in Debian's headless Chromium, against a real local run and a real agent
// (tests/test_web_flows_e2e.py starts both and passes the settings below). Controls are found the
// way people find them: by their visible labels and their roles. Along the way it checks every main
// page with axe-core (no serious or critical violations) and saves screenshots at 1280 and 390 px.
//
//   BASE_URL ADMIN_EMAIL ADMIN_PASSWORD MAIL_DIR HANDOFF_DIR PUBLIC_KEY KEY_FINGERPRINT
//   [SCREENSHOT_DIR] [CHROMIUM] node e2e/flows.mjs
//
// HANDOFF_DIR: the script writes install-command.txt there once the admin has added the node; the
// test enrolls and starts the real agent with it, and the script waits for the node to turn online.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { recordCspRefusals } from './browser.mjs';
import {
  LIVE_MS,
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
  'PUBLIC_KEY',
  'KEY_FINGERPRINT',
];
const missing = required.filter((key) => !env[key]);
if (missing.length > 0) {
  console.error(`e2e: set ${missing.join(', ')}`);
  process.exit(2);
}
const BASE = env.BASE_URL.replace(/\/$/, '');
const suffix = Date.now().toString(36);
const HOST = `gpu-web-${suffix}`;
const USER_EMAIL = `ada-${suffix}@lab.example`;
const USER_PASSWORD = 'correct horse battery staple';
const ENV_NAME = `Training ${suffix}`;

async function flows(browser) {
  const adminContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const userContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await adminContext.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  const admin = await adminContext.newPage();
  const user = await userContext.newPage();
  const errors = [];
  const refused = [];
  for (const page of [admin, user]) {
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (err) => errors.push(err.message));
    recordCspRefusals(page, refused);
  }

  try {
    await step(
      'someone not signed in lands on /login, and comes back after signing in',
      async () => {
        await admin.goto(`${BASE}/admin/nodes`, { waitUntil: 'load' });
        await admin.waitForURL(/\/login\?next=%2Fadmin%2Fnodes$/, { timeout: TIMEOUT_MS });
        await accessible(admin, 'login');
        await shoot(admin, 'login');
        await admin.getByLabel('Email', { exact: true }).fill(env.ADMIN_EMAIL);
        await admin.getByLabel('Password', { exact: true }).fill('not the password');
        await admin.getByRole('button', { name: 'Sign in' }).click();
        await admin.getByText('Wrong email or password.').waitFor();
        await signIn(admin, env.ADMIN_EMAIL, env.ADMIN_PASSWORD);
        await admin.waitForURL(`${BASE}/admin/nodes`);
      },
    );

    let installCommand = '';
    await step('the admin adds a node and sees the install command once', async () => {
      await admin.getByRole('heading', { level: 1, name: 'Nodes' }).waitFor();
      await admin.getByRole('button', { name: 'Add node' }).click();
      const dialog = admin.getByRole('dialog');
      await dialog.getByLabel('Host name').fill(HOST);
      await dialog.getByLabel('Management IP').fill('10.0.0.21');
      await dialog.getByRole('button', { name: 'Create node' }).click();
      await dialog.getByRole('heading', { name: 'Install the agent' }).waitFor();
      installCommand = (
        await dialog
          .locator('pre, code')
          .filter({ hasText: 'install-agent.sh' })
          .first()
          .innerText()
      ).trim();
      // The token only in printf's words (a shell builtin), never an argument of a process.
      check(/printf '%s\\n' [\w-]+;/.test(installCommand), `no token in ${installCommand}`);
      check(!/--token /.test(installCommand), `the token on a command line in ${installCommand}`);
      check(
        /--ca-fingerprint [0-9a-f:]{64,}/i.test(installCommand),
        `no fingerprint in ${installCommand}`,
      );
      await dialog.getByText('shown only once', { exact: false }).waitFor();
      await dialog.getByRole('button', { name: 'Copy install command' }).click();
      const copied = await admin.evaluate(() => navigator.clipboard.readText());
      check(copied.trim() === installCommand, 'the copy button did not copy the install command');
      await shoot(admin, 'nodes-add');
      await dialog.getByRole('button', { name: 'Done' }).click();
      writeFileSync(join(env.HANDOFF_DIR, 'install-command.txt'), installCommand);
    });

    await step('the node turns online and its GPU map shows its 8 GPUs, all free', async () => {
      const map = admin.getByRole('list', { name: `GPU map of ${HOST}` });
      await waitFor(
        '8 GPUs in the map',
        async () => (await map.getByRole('listitem').count()) === 8,
        45_000,
      );
      check(
        (await map.getByRole('listitem').filter({ hasText: 'Free' }).count()) === 8,
        'not all GPUs free',
      );
      await admin.getByText('online', { exact: false }).first().waitFor();
    });

    await step('the admin invites a user; the invite goes out by mail', async () => {
      await admin.getByRole('link', { name: 'Users' }).click();
      await admin.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      await admin.getByLabel('Email', { exact: true }).fill(USER_EMAIL);
      await admin.getByRole('button', { name: 'Send invite' }).click();
      await admin.getByText(USER_EMAIL).first().waitFor();
      await waitFor('the invite mail', async () => inviteLink(USER_EMAIL));
    });

    await step(
      'the user accepts the invite from the mail and signs in with the email filled',
      async () => {
        const link = inviteLink(USER_EMAIL);
        await user.goto(link, { waitUntil: 'load' });
        await user.getByRole('heading', { level: 1, name: 'Join gpulab' }).waitFor();
        await accessible(user, 'invite');
        await user.getByLabel('Your name', { exact: true }).fill('Ada Lovelace');
        await user.getByLabel('Password', { exact: true }).fill(USER_PASSWORD);
        await user.getByLabel('Repeat password', { exact: true }).fill(USER_PASSWORD);
        await shoot(user, 'invite');
        await user.getByRole('button', { name: 'Create account' }).click();
        await user.waitForURL(/\/login\?/, { timeout: TIMEOUT_MS });
        await signIn(user, USER_EMAIL, USER_PASSWORD, { filled: true });
        await user.getByRole('heading', { level: 1, name: 'My GPUs' }).waitFor();
        await user.getByRole('link', { name: 'Add an SSH key' }).first().waitFor();
        await accessible(user, 'my-gpus-empty');
        await shoot(user, 'my-gpus-empty');
      },
    );

    await step('the user adds an SSH key and sees its fingerprint', async () => {
      await user.getByRole('link', { name: 'SSH keys' }).click();
      await user.getByRole('heading', { level: 1, name: 'SSH keys' }).waitFor();
      await user
        .getByLabel('Public key', { exact: true })
        .fill('-----BEGIN OPENSSH PRIVATE KEY-----');
      await user.getByText('private key', { exact: false }).first().waitFor();
      await user.getByLabel('Public key', { exact: true }).fill(env.PUBLIC_KEY);
      await user.getByRole('button', { name: 'Add key' }).click();
      await user.getByText(env.KEY_FINGERPRINT).first().waitFor();
      await accessible(user, 'keys');
      await shoot(user, 'keys');
    });

    await step('the admin creates an Environment and attaches the node', async () => {
      await admin.getByRole('link', { name: 'Environments' }).click();
      await admin.getByRole('heading', { level: 1, name: 'Environments' }).waitFor();
      await admin.getByRole('button', { name: 'New Environment' }).click();
      await dialogOpened(admin);
      await admin.getByLabel('Name', { exact: true }).fill(ENV_NAME);
      // The agent reports this machine's CPUs and memory (2 cores on CI): ask for little.
      await admin.getByLabel('Default CPUs').fill('1');
      await admin.getByLabel('Default RAM (MiB)').fill('1024');
      await admin.getByLabel('Default expiry (hours)').fill('48');
      await admin.getByRole('button', { name: 'Create Environment' }).click();
      await dialogClosed(admin);
      await admin.getByRole('heading', { level: 2, name: ENV_NAME, exact: true }).waitFor();
      await choose(admin, `Node to attach to ${ENV_NAME}`, HOST);
      await admin.getByRole('button', { name: `Attach node to ${ENV_NAME}` }).click();
      await admin.getByRole('button', { name: `Detach ${HOST} from ${ENV_NAME}` }).waitFor();
      await accessible(admin, 'environments');
      await shoot(admin, 'environments');
    });

    await step('the admin makes a dynamic assignment of 2 GPUs to the user', async () => {
      await admin.getByRole('link', { name: 'Assignments' }).click();
      await admin.getByRole('heading', { level: 1, name: 'Assignments' }).waitFor();
      await admin.getByRole('button', { name: 'New assignment' }).click();
      await choose(admin, 'User', new RegExp(USER_EMAIL.replace(/[.]/g, '\\.')));
      await choose(admin, 'Environment', ENV_NAME);
      check(
        (await admin.getByLabel('CPUs', { exact: true }).inputValue()) === '1',
        'CPUs not from the Environment',
      );
      await admin.getByLabel('GPUs', { exact: true }).fill('2');
      await admin.getByRole('radio', { name: /^Dynamic/ }).check();
      await admin.getByRole('button', { name: 'Create assignment' }).click();
      await admin
        .getByRole('button', { name: `Revoke ${USER_EMAIL} on ${HOST}` })
        .waitFor({ timeout: TIMEOUT_MS });
      await accessible(admin, 'assignments');
      await shoot(admin, 'assignments');
    });

    await step('the GPU map shows who holds which GPU', async () => {
      await admin.getByRole('link', { name: 'Nodes' }).click();
      const map = admin.getByRole('list', { name: `GPU map of ${HOST}` });
      await waitFor(
        '2 GPUs held by the user',
        async () => (await map.getByRole('listitem').filter({ hasText: USER_EMAIL }).count()) === 2,
      );
      check(
        (await map.getByRole('listitem').filter({ hasText: 'Free' }).count()) === 6,
        'six GPUs stay free',
      );
      const held = await map.getByRole('listitem').filter({ hasText: USER_EMAIL }).allInnerTexts();
      check(
        held.some((t) => t.includes('GPU 0')) && held.some((t) => t.includes('GPU 1')),
        `held: ${held}`,
      );
      await accessible(admin, 'nodes');
      await shoot(admin, 'nodes');
    });

    await step('the user sees the GPUs and the SSH config, within 5 s', async () => {
      await user.getByRole('link', { name: 'My GPUs' }).click();
      const config = user.locator('pre').filter({ hasText: 'ProxyJump' });
      await config.first().waitFor({ timeout: LIVE_MS + 1000 });
      const text = await config.first().innerText();
      check(text.includes('Host ') && text.includes('User '), `not an SSH config: ${text}`);
      await user.getByText(HOST).first().waitFor();
      await user.getByRole('button', { name: 'Copy SSH config' }).waitFor();
      // The real agent's report reaches the page: as root (in its throwaway host) it created the
      // account and says Ready; as anyone else useradd is refused and the page says it failed.
      const state = user.getByTestId('agent-state');
      if (env.EXPECT_READY === '1') {
        await state.getByText('Ready', { exact: true }).waitFor({ timeout: TIMEOUT_MS });
      } else {
        await state.getByText('failed', { exact: false }).waitFor({ timeout: TIMEOUT_MS });
      }
      await accessible(user, 'my-gpus');
      await shoot(user, 'my-gpus');
    });

    await step(
      "the admin revokes; the user's list empties within 5 s without a reload",
      async () => {
        await admin.getByRole('link', { name: 'Assignments' }).click();
        await admin.getByRole('button', { name: `Revoke ${USER_EMAIL} on ${HOST}` }).click();
        // The confirmation by keyboard alone: it opens on "Cancel"; Tab reaches the action, Enter.
        const cancel = admin.getByRole('alertdialog').getByRole('button', { name: 'Cancel' });
        await cancel.waitFor();
        // Focus moves into the dialog once it has opened.
        await admin
          .waitForFunction(() => document.activeElement?.textContent?.trim() === 'Cancel', null, {
            timeout: 5000,
          })
          .catch(() => {
            throw new Error('the confirmation does not start on Cancel');
          });
        await admin.keyboard.press('Tab');
        await admin.keyboard.press('Enter');
        const revokedAt = Date.now();
        await user
          .locator('pre')
          .filter({ hasText: 'ProxyJump' })
          .first()
          .waitFor({ state: 'detached', timeout: LIVE_MS });
        console.log(`e2e: the user's page emptied ${Date.now() - revokedAt} ms after the revoke`);
      },
    );

    await step('the users page and its accessibility', async () => {
      await admin.getByRole('link', { name: 'Users' }).click();
      await admin.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      await admin.getByText(USER_EMAIL).first().waitFor();
      await accessible(admin, 'users');
      await shoot(admin, 'users');
    });

    await step('the audit page lists each of those actions, and the chain is valid', async () => {
      await admin.getByRole('link', { name: 'Audit log' }).click();
      await admin.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      await admin.getByText('Audit chain valid', { exact: false }).waitFor({ timeout: TIMEOUT_MS });
      for (const action of [
        'node.created',
        'user.invited',
        'user.invite_accepted',
        'ssh_key.added',
        'environment.created',
        'environment.node_attached',
        'assignment.created',
        'assignment.revoked',
      ]) {
        await admin
          .getByRole('cell', { name: action, exact: true })
          .first()
          .waitFor({ timeout: TIMEOUT_MS });
      }
      await admin.getByRole('button', { name: 'Show details' }).first().click();
      await admin.getByRole('button', { name: 'Hide details' }).first().waitFor();
      await accessible(admin, 'audit');
      await shoot(admin, 'audit');
    });

    await step(
      'a user who opens /admin/nodes gets the portal, and the API refuses (403)',
      async () => {
        await user.goto(`${BASE}/admin/nodes`, { waitUntil: 'load' });
        await user.getByText('for admins only', { exact: false }).waitFor();
        await user.getByRole('heading', { level: 1, name: 'My GPUs' }).waitFor();
        const statuses = await user.evaluate(async () => {
          const nodes = await fetch('/api/v1/nodes');
          const audit = await fetch('/api/v1/audit-log');
          return [nodes.status, audit.status];
        });
        check(
          statuses.every((s) => s === 403),
          `the API answered ${statuses}`,
        );
      },
    );

    await step('log out ends the session in every tab', async () => {
      const second = await userContext.newPage();
      recordCspRefusals(second, refused);
      await second.goto(`${BASE}/keys`, { waitUntil: 'load' });
      await second.getByRole('heading', { level: 1, name: 'SSH keys' }).waitFor();
      await user.getByRole('button', { name: 'Log out' }).click();
      await user.waitForURL(/\/login/);
      await second.waitForURL(/\/login/, { timeout: LIVE_MS });
      const status = await user.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
      check(status === 401, `after logout /auth/me answered ${status}`);
    });

    check(errors.length === 0, `uncaught errors in the pages: ${errors.join('; ')}`);
    check(refused.length === 0, `the Content-Security-Policy refused: ${refused.join('; ')}`);
  } catch (err) {
    await showPages([
      ['admin', admin],
      ['user', user],
    ]);
    throw err;
  }
}

await runInChromium(flows);
