// Real-browser check of the invite flow: opens the link from an invite email in Debian's headless
// Chromium, fills in the form, waits for the sign-in page (its notice, the email filled in) and signs
// in with the new password. It accepts the invite for real, so each run needs a fresh invite.
//
//   INVITE_URL='https://gpulab.example.org/invite/<token>' NAME='Ada Lovelace' PASSWORD='...' \
//     [SCREENSHOT=/tmp/invite.png] [CHROMIUM=/usr/bin/chromium] node e2e/accept-invite.mjs
//
// Uses playwright-core only as a driver: the browser is the system one, never a downloaded build.
import { runInBrowser } from './browser.mjs';

// Generous for a cold gateway on a 2-core CI machine; a healthy one answers in milliseconds.
const TIMEOUT_MS = 20_000;

const { INVITE_URL: inviteUrl, NAME: name, PASSWORD: password } = process.env;
const missing = Object.entries({ INVITE_URL: inviteUrl, NAME: name, PASSWORD: password })
  .filter(([, value]) => !value)
  .map(([key]) => key);
if (missing.length > 0) {
  console.error(
    `e2e: set ${missing.join(', ')}, e.g. INVITE_URL=http://127.0.0.1:8080/invite/<token> ` +
      `NAME='Ada Lovelace' PASSWORD='a long passphrase'`,
  );
  process.exit(2);
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

const oneLine = (text) => text.replace(/\s+/g, ' ').trim();

async function acceptInvite(page) {
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));

  const response = await page.goto(inviteUrl, { waitUntil: 'load', timeout: TIMEOUT_MS });
  check(response?.ok(), `GET ${inviteUrl} answered ${response?.status()}`);

  // The page settles on the form, or on a message saying why the invite cannot be used.
  const section = page.locator('app-accept-invite section.invite:not([data-state="loading"])');
  await section.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const state = await section.getAttribute('data-state');
  if (state !== 'form') {
    const alert = await section.locator('[role=alert]').first().innerText();
    throw new Error(`the invite page shows no form (${state}): ${oneLine(alert)}`);
  }

  const email = page.getByLabel('Email', { exact: true });
  const shownEmail = await email.inputValue();
  check(shownEmail.trim() !== '', 'the email field is empty');
  check(await email.isEditable().then((editable) => !editable), 'the email field is editable');
  console.log(`e2e: invite for ${shownEmail}`);

  await page.getByLabel('Your name', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  const submit = page.getByRole('button', { name: 'Create account' });
  check(
    await submit.isDisabled(),
    'Create account is enabled before the password was repeated; the rules are not enforced',
  );
  await page.getByLabel('Repeat password', { exact: true }).fill(password);
  if (await submit.isDisabled()) {
    const errors = await page.locator('.field__error').allInnerTexts();
    throw new Error(
      `Create account stays disabled after filling the form: ${errors.map(oneLine).join('; ') || 'no error shown'}`,
    );
  }
  await submit.click();

  // The request settles on the sign-in page, or the invite page shows why it failed.
  const signIn = page.locator('app-login');
  const outcome = page.locator(
    'app-login .notice[role=status], [data-testid=gone], form [role=alert], #invite-password-error',
  );
  await outcome.first().waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  if (!(await signIn.isVisible())) {
    throw new Error(`accepting the invite failed: ${oneLine(await outcome.first().innerText())}`);
  }
  const text = oneLine(await signIn.locator('.notice[role=status]').innerText());
  check(
    text === 'Your account is ready. Sign in with your new password.',
    `unexpected notice on the sign-in page: ${JSON.stringify(text)}`,
  );
  const url = new URL(page.url());
  check(
    url.pathname === '/login' && url.searchParams.get('email') === shownEmail,
    `the invite page went to ${url.pathname}${url.search}, not /login?email=<the invited email>`,
  );
  const loginEmail = page.getByLabel('Email', { exact: true });
  check(
    (await loginEmail.inputValue()) === shownEmail,
    'the sign-in page did not fill in the invited email',
  );

  // The new account works: sign in with the password just set.
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const portal = page.getByRole('heading', { level: 1, name: 'My GPUs' });
  const refused = page.locator('[data-testid=login-error]');
  await portal.or(refused).first().waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  if (await refused.isVisible()) {
    throw new Error(
      `signing in with the new password failed: ${oneLine(await refused.innerText())}`,
    );
  }
  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join('; ')}`);

  console.log(
    `e2e: ${text.slice(0, text.indexOf('ready.') + 'ready.'.length)} Signed in as ${shownEmail}.`,
  );
}

await runInBrowser('accept-invite', acceptInvite);
