// The accept-invite page: submitting the form.
import { ACCOUNT_READY_NOTICE } from './accept-invite';
import {
  ACCEPT,
  GOOD_PASSWORD,
  INVITE,
  LOOKUP,
  SIGN_IN_URL,
  USER,
  problem,
  usePage,
} from './accept-invite.testing';

describe('AcceptInvite', () => {
  const page = usePage();
  const { $, input, submitButton, state, stable, type, blur, openForm, open, fillValid } = page;

  describe('submitting', () => {
    beforeEach(openForm);

    it('sends exactly {name, password} once, even on a double click', async () => {
      await fillValid('  Ada Lovelace ');

      submitButton().click();
      submitButton().click();
      await stable();

      const req = page.httpTesting.expectOne(ACCEPT);
      expect(req.request.body).toEqual({ name: 'Ada Lovelace', password: GOOD_PASSWORD });
      expect(Object.keys(req.request.body as object).sort()).toEqual(['name', 'password']);

      // While the request runs the form is disabled and says it is working.
      expect($<HTMLFieldSetElement>('fieldset')?.disabled).toBe(true);
      expect(submitButton().disabled).toBe(true);
      expect($('.progress[role=status]')?.textContent).toContain('Creating your account');
      submitButton().click();
      $('form')?.dispatchEvent(new Event('submit', { cancelable: true }));
      await stable();
      page.httpTesting.expectNone(ACCEPT);

      req.flush(USER, { status: 201, statusText: 'Created' });
      await stable();
    });

    it('sends the person to sign in, with the email filled in and a notice, once the account is ready', async () => {
      await fillValid();
      submitButton().click();
      page.httpTesting.expectOne(ACCEPT).flush(USER, { status: 201, statusText: 'Created' });
      await stable();

      expect(page.url()).toBe(SIGN_IN_URL);
      expect(page.notice()).toBe(ACCOUNT_READY_NOTICE);
      expect(ACCOUNT_READY_NOTICE).toBe('Your account is ready. Sign in with your new password.');
      expect(page.harness.routeNativeElement?.querySelector('h1')?.textContent).toBe(
        'Sign in to gpulab',
      );
    });

    it('uses the email of the account the server made', async () => {
      await fillValid();
      submitButton().click();
      page.httpTesting
        .expectOne(ACCEPT)
        .flush({ ...USER, email: 'Ada+gpu@Example.org' }, { status: 201, statusText: 'Created' });
      await stable();

      expect(page.url()).toBe('/login?email=Ada%2Bgpu@Example.org');
      expect(page.emailParam()).toBe('Ada+gpu@Example.org');
    });

    it('shows why the server refused the password under the field, and focuses it', async () => {
      await fillValid();
      submitButton().click();
      page.httpTesting
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
      page.httpTesting
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
      page.httpTesting
        .expectOne(ACCEPT)
        .flush(problem(410, 'invite_expired'), { status: 410, statusText: 'Gone' });
      await stable();

      expect($('[role=alert]')?.textContent).toContain('This invite has expired');
    });

    it('keeps the entries after a server error and lets the person retry', async () => {
      await fillValid();
      submitButton().click();
      page.httpTesting
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
      const retry = page.httpTesting.expectOne(ACCEPT);
      expect(retry.request.body).toEqual({ name: 'Ada Lovelace', password: GOOD_PASSWORD });
      retry.flush(USER, { status: 201, statusText: 'Created' });
      await stable();
      expect(page.url()).toBe(SIGN_IN_URL);
    });
  });
});
