import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { User } from '../../api';
import { AcceptInvite } from './accept-invite';

// URL-safe base64 with padding: the router decodes %3D to "=", the API call encodes it again.
const TOKEN = 'tok-en_123=';
const LOOKUP = { method: 'GET', url: '/api/v1/auth/invites/tok-en_123%3D' };
const ACCEPT = { method: 'POST', url: '/api/v1/auth/invites/tok-en_123%3D/accept' };
const INVITE = { email: 'ada@example.org', expires_at: '2030-01-02T03:04:05Z' };
const GOOD_PASSWORD = 'correct horse battery';

const USER: User = {
  id: '8d3c6a8e-0f0e-4a57-9d5e-3f1b9a1c2d4e',
  email: 'ada@example.org',
  name: 'Ada Lovelace',
  role: 'user',
  status: 'active',
  has_ssh_key: false,
  created_at: '2030-01-01T00:00:00Z',
};

function problem(status: number, code: string, detail = 'details') {
  return { type: 'about:blank', title: 'Problem', status, detail, code };
}

describe('AcceptInvite', () => {
  let harness: RouterTestingHarness;
  let httpTesting: HttpTestingController;
  let el: HTMLElement;

  const $ = <T extends Element = HTMLElement>(selector: string) => el.querySelector<T>(selector);
  const input = (id: string) => $<HTMLInputElement>(`#invite-${id}`)!;
  const submitButton = () => $<HTMLButtonElement>('button[type=submit]')!;
  const state = () => $('section.invite')?.getAttribute('data-state');
  const stable = () => harness.fixture.whenStable();

  async function type(id: 'name' | 'password' | 'repeat', value: string): Promise<void> {
    const field = input(id);
    field.value = value;
    field.dispatchEvent(new Event('input'));
    await stable();
  }

  async function blur(id: 'name' | 'password' | 'repeat'): Promise<void> {
    input(id).dispatchEvent(new Event('blur'));
    await stable();
  }

  /** Opens the page and answers the lookup with a valid invite. */
  async function openForm(): Promise<void> {
    await open();
    httpTesting.expectOne(LOOKUP).flush(INVITE);
    await stable();
  }

  async function open(): Promise<void> {
    await harness.navigateByUrl(`/invite/${encodeURIComponent(TOKEN)}`, AcceptInvite);
    el = harness.routeNativeElement!;
    await stable();
  }

  async function fillValid(name = 'Ada Lovelace', password = GOOD_PASSWORD): Promise<void> {
    await type('name', name);
    await type('password', password);
    await type('repeat', password);
  }

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [
        provideRouter([{ path: 'invite/:token', component: AcceptInvite }]),
        provideHttpClient(),
        provideHttpClientTesting(),
      ],
    });
    httpTesting = TestBed.inject(HttpTestingController);
    harness = await RouterTestingHarness.create();
  });

  afterEach(() => httpTesting.verify());

  describe('loading the invite', () => {
    it('shows progress until the gateway answers', async () => {
      await open();
      httpTesting.expectOne(LOOKUP);

      expect(state()).toBe('loading');
      expect($('section')?.getAttribute('aria-busy')).toBe('true');
      expect($('[role=status]')?.textContent).toContain('Checking your invite');
      expect($('form')).toBeNull();
    });

    it('shows the form with the invited email, read-only', async () => {
      await openForm();

      expect(state()).toBe('form');
      const email = input('email');
      expect(email.value).toBe('ada@example.org');
      expect(email.readOnly).toBe(true);
      expect(email.getAttribute('autocomplete')).toBe('username');
      expect(input('name').value).toBe('');
      expect(input('name').getAttribute('autocomplete')).toBe('name');
      expect(input('password').type).toBe('password');
      expect(input('password').getAttribute('autocomplete')).toBe('new-password');
      expect(input('repeat').getAttribute('autocomplete')).toBe('new-password');
      expect($('time')?.getAttribute('datetime')).toBe(INVITE.expires_at);
      // Every field has a label.
      for (const id of ['email', 'name', 'password', 'repeat']) {
        expect($(`label[for=invite-${id}]`)?.textContent?.trim()).toBeTruthy();
      }
      expect(submitButton().disabled).toBe(true);
    });

    it('says an expired or replaced invite cannot be used', async () => {
      await open();
      httpTesting
        .expectOne(LOOKUP)
        .flush(problem(410, 'invite_expired'), { status: 410, statusText: 'Gone' });
      await stable();

      expect(state()).toBe('gone');
      expect($('[role=alert]')?.textContent).toContain(
        'This invite has expired or was replaced by a newer one — ask your admin to invite you again.',
      );
      expect($('form')).toBeNull();
    });

    it('says a used invite has been used, with a link to log in', async () => {
      await open();
      httpTesting
        .expectOne(LOOKUP)
        .flush(problem(410, 'invite_used'), { status: 410, statusText: 'Gone' });
      await stable();

      const alert = $('[role=alert]');
      expect(alert?.textContent).toContain('This invite has already been used.');
      const link = alert?.querySelector('a');
      expect(link?.textContent?.trim()).toBe('Log in instead.');
      expect(link?.getAttribute('href')).toBe('/');
      expect($('form')).toBeNull();
    });

    it('says an unknown token is not a valid link', async () => {
      await open();
      httpTesting
        .expectOne(LOOKUP)
        .flush(problem(404, 'not_found'), { status: 404, statusText: 'Not Found' });
      await stable();

      expect($('[role=alert]')?.textContent).toContain(
        'This invite link is not valid (check that you copied all of it).',
      );
      expect($('[role=alert] button')).toBeNull();
    });

    it('offers to try again after a server error, and recovers', async () => {
      await open();
      httpTesting
        .expectOne(LOOKUP)
        .flush(problem(503, 'upstream_unavailable', 'identity is not answering'), {
          status: 503,
          statusText: 'Service Unavailable',
        });
      await stable();

      expect(state()).toBe('error');
      const alert = $('[role=alert]');
      expect(alert?.textContent).toContain('Could not check your invite.');
      expect(alert?.textContent).toContain('Identity is not answering.');

      alert?.querySelector('button')?.click();
      await stable();
      expect(state()).toBe('loading');
      httpTesting.expectOne(LOOKUP).flush(INVITE);
      await stable();
      expect(input('email').value).toBe('ada@example.org');
    });

    it('says the gateway could not be reached on a network error', async () => {
      await open();
      httpTesting.expectOne(LOOKUP).error(new ProgressEvent('error'));
      await stable();

      expect($('[role=alert]')?.textContent).toContain('The gateway could not be reached.');
      expect($('[role=alert] button')?.textContent?.trim()).toBe('Try again');
    });
  });

  describe('password rules', () => {
    beforeEach(async () => {
      await openForm();
      await type('name', 'Ada Lovelace');
    });

    const rule = (name: string) => $(`[data-rule=${name}]`)?.getAttribute('data-met');

    async function both(password: string): Promise<void> {
      await type('password', password);
      await type('repeat', password);
    }

    it('shows the rules before anything is typed, none met', () => {
      expect($('#invite-password-rules')?.textContent).toContain('12 to 128 characters');
      expect(rule('length')).toBe('false');
      expect(rule('match')).toBe('false');
      expect(input('password').getAttribute('aria-describedby')).toContain('invite-password-rules');
      expect(input('repeat').getAttribute('aria-describedby')).toContain('invite-password-rules');
    });

    it('refuses 11 characters', async () => {
      await both('a'.repeat(11));
      expect(rule('length')).toBe('false');
      expect(rule('match')).toBe('true');
      expect(submitButton().disabled).toBe(true);
    });

    it('accepts 12 characters', async () => {
      await both('a'.repeat(12));
      expect(rule('length')).toBe('true');
      expect(submitButton().disabled).toBe(false);
    });

    it('accepts 128 characters', async () => {
      await both('a'.repeat(128));
      expect(rule('length')).toBe('true');
      expect(submitButton().disabled).toBe(false);
    });

    it('refuses 129 characters, and says so at once', async () => {
      await both('a'.repeat(129));
      expect(rule('length')).toBe('false');
      expect(submitButton().disabled).toBe(true);
      expect($('#invite-password-error')?.textContent).toContain('this has 129');
      expect(input('password').getAttribute('aria-invalid')).toBe('true');
    });

    it('counts an emoji as one character', async () => {
      // 11 emoji are 22 UTF-16 units, but 11 characters: still too short.
      await both('😀'.repeat(11));
      expect(rule('length')).toBe('false');
      expect($('.rules__count')?.textContent).toContain('11');
      expect(submitButton().disabled).toBe(true);

      await both('😀'.repeat(12));
      expect(rule('length')).toBe('true');
      expect(submitButton().disabled).toBe(false);

      // 128 emoji are 256 UTF-16 units, but within the limit.
      await both('🔑'.repeat(128));
      expect(rule('length')).toBe('true');
      expect(submitButton().disabled).toBe(false);

      await both('🔑'.repeat(129));
      expect(rule('length')).toBe('false');
      expect(submitButton().disabled).toBe(true);
    });

    it('refuses two entries that differ', async () => {
      await type('password', GOOD_PASSWORD);
      await type('repeat', `${GOOD_PASSWORD}!`);

      expect(rule('length')).toBe('true');
      expect(rule('match')).toBe('false');
      expect(submitButton().disabled).toBe(true);
      expect($('#invite-repeat-error')?.textContent).toContain('do not match');
      expect(input('repeat').getAttribute('aria-describedby')).toContain('invite-repeat-error');
    });

    it('does not call a half-typed repeat a mismatch until the field is left', async () => {
      await type('password', GOOD_PASSWORD);
      await type('repeat', GOOD_PASSWORD.slice(0, 5));
      expect($('#invite-repeat-error')).toBeNull();

      await blur('repeat');
      expect($('#invite-repeat-error')?.textContent).toContain('do not match');
    });

    it('asks for a too-short password only once the field is left', async () => {
      await type('password', 'short');
      expect($('#invite-password-error')).toBeNull();

      await blur('password');
      expect($('#invite-password-error')?.textContent).toContain('Use 12 to 128 characters');
    });

    it('requires a name', async () => {
      await type('name', '   ');
      await both(GOOD_PASSWORD);
      expect(submitButton().disabled).toBe(true);

      await blur('name');
      expect($('#invite-name-error')?.textContent).toContain('Enter your name');
      expect(input('name').getAttribute('aria-describedby')).toBe('invite-name-error');
    });
  });

  describe('submitting', () => {
    beforeEach(openForm);

    it('sends exactly {name, password} once, even on a double click', async () => {
      await fillValid('  Ada Lovelace ');

      submitButton().click();
      submitButton().click();
      await stable();

      const req = httpTesting.expectOne(ACCEPT);
      expect(req.request.body).toEqual({ name: 'Ada Lovelace', password: GOOD_PASSWORD });
      expect(Object.keys(req.request.body as object).sort()).toEqual(['name', 'password']);

      // While the request runs the form is disabled and says it is working.
      expect($<HTMLFieldSetElement>('fieldset')?.disabled).toBe(true);
      expect(submitButton().disabled).toBe(true);
      expect($('.progress[role=status]')?.textContent).toContain('Creating your account');
      submitButton().click();
      $('form')?.dispatchEvent(new Event('submit', { cancelable: true }));
      await stable();
      httpTesting.expectNone(ACCEPT);

      req.flush(USER, { status: 201, statusText: 'Created' });
      await stable();
    });

    it('shows the welcome once the account is ready', async () => {
      await fillValid();
      submitButton().click();
      httpTesting.expectOne(ACCEPT).flush(USER, { status: 201, statusText: 'Created' });
      await stable();

      expect(state()).toBe('done');
      const welcome = $('[data-testid=welcome]');
      expect(welcome?.textContent).toContain('Welcome, Ada Lovelace. Your account is ready.');
      expect(welcome?.textContent).toContain('there is no login page yet');
      expect(welcome?.querySelector('a')?.getAttribute('href')).toBe('/');
      expect($('form')).toBeNull();
      expect(document.activeElement).toBe(welcome);
    });

    it('shows why the server refused the password under the field, and focuses it', async () => {
      await fillValid();
      submitButton().click();
      httpTesting
        .expectOne(ACCEPT)
        .flush(
          problem(422, 'invalid_password', 'the password must not contain control characters'),
          { status: 422, statusText: 'Unprocessable Content' },
        );
      await stable();

      expect(state()).toBe('form');
      const error = $('#invite-password-error');
      expect(error?.textContent).toContain('The password must not contain control characters.');
      expect(input('password').getAttribute('aria-describedby')).toContain('invite-password-error');
      expect(input('password').getAttribute('aria-invalid')).toBe('true');
      expect(document.activeElement).toBe(input('password'));
      // Same password again would be refused again; a changed one may be fine.
      expect(submitButton().disabled).toBe(true);
      await type('password', `${GOOD_PASSWORD}?`);
      await type('repeat', `${GOOD_PASSWORD}?`);
      expect($('#invite-password-error')).toBeNull();
      expect(submitButton().disabled).toBe(false);
    });

    it('switches to the used message when the invite was used meanwhile', async () => {
      await fillValid();
      submitButton().click();
      httpTesting
        .expectOne(ACCEPT)
        .flush(problem(410, 'invite_used'), { status: 410, statusText: 'Gone' });
      await stable();

      expect(state()).toBe('gone');
      expect($('[role=alert]')?.textContent).toContain('This invite has already been used.');
      expect($('form')).toBeNull();
    });

    it('switches to the expired message when the invite expired meanwhile', async () => {
      await fillValid();
      submitButton().click();
      httpTesting
        .expectOne(ACCEPT)
        .flush(problem(410, 'invite_expired'), { status: 410, statusText: 'Gone' });
      await stable();

      expect($('[role=alert]')?.textContent).toContain('This invite has expired');
    });

    it('keeps the entries after a server error and lets the person retry', async () => {
      await fillValid();
      submitButton().click();
      httpTesting
        .expectOne(ACCEPT)
        .flush('bad gateway', { status: 502, statusText: 'Bad Gateway' });
      await stable();

      const alert = $('[role=alert]');
      expect(alert?.textContent).toContain('Your account could not be created.');
      expect(alert?.textContent).toContain('The gateway answered 502 Bad Gateway.');
      expect(document.activeElement).toBe(alert);
      expect(input('name').value).toBe('Ada Lovelace');
      expect(input('password').value).toBe(GOOD_PASSWORD);
      expect($<HTMLFieldSetElement>('fieldset')?.disabled).toBe(false);

      alert?.querySelector('button')?.click();
      await stable();
      const retry = httpTesting.expectOne(ACCEPT);
      expect(retry.request.body).toEqual({ name: 'Ada Lovelace', password: GOOD_PASSWORD });
      retry.flush(USER, { status: 201, statusText: 'Created' });
      await stable();
      expect(state()).toBe('done');
    });
  });
});
