// The accept-invite page: loading the invite, and the password rules.
import {
  ACCEPT,
  GOOD_PASSWORD,
  INVITE,
  LOOKUP,
  USER,
  problem,
  usePage,
} from './accept-invite.testing';

describe('AcceptInvite', () => {
  const page = usePage();
  const { $, input, submitButton, state, stable, type, blur, openForm, open, fillValid } = page;

  describe('loading the invite', () => {
    it('shows progress until the gateway answers', async () => {
      await open();
      page.httpTesting.expectOne(LOOKUP);

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
      page.httpTesting
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
      page.httpTesting
        .expectOne(LOOKUP)
        .flush(problem(410, 'invite_used'), { status: 410, statusText: 'Gone' });
      await stable();

      const alert = $('[role=alert]');
      expect(alert?.textContent).toContain('This invite has already been used.');
      const link = alert?.querySelector('a');
      expect(link?.textContent?.trim()).toBe('Log in instead.');
      expect(link?.getAttribute('href')).toBe('/login');
      expect($('form')).toBeNull();
    });

    it('says an unknown token is not a valid link', async () => {
      await open();
      page.httpTesting
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
      page.httpTesting
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
      page.httpTesting.expectOne(LOOKUP).flush(INVITE);
      await stable();
      expect(input('email').value).toBe('ada@example.org');
    });

    it('says the gateway could not be reached on a network error', async () => {
      await open();
      page.httpTesting.expectOne(LOOKUP).error(new ProgressEvent('error'));
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
});
