import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import type { SshKey } from '../../api';
import { Auth } from '../../core/auth';
import { Confirm } from '../../shared/confirm';
import { Toast } from '../../shared/toast';
import { USER, problem } from '../../testing/http.testing';
import { Keys } from './keys';
import {
  ED25519,
  ED25519_KEYGEN,
  PRIVATE_OPENSSH,
  RSA_3072,
  fingerprintOf,
} from './test-keys.testing';

const LIST = { method: 'GET', url: '/api/v1/me/ssh-keys' };
const ADD = { method: 'POST', url: '/api/v1/me/ssh-keys' };
const ME = { method: 'GET', url: '/api/v1/auth/me' };

const ADA_KEY: SshKey = {
  id: '5b0e1c9a-0000-4a57-9d5e-3f1b9a1c2d4e',
  type: 'ssh-ed25519',
  fingerprint: fingerprintOf(ED25519_KEYGEN),
  comment: 'ada@lab.org',
  created_at: '2030-01-02T03:04:05Z',
};
const LAPTOP_KEY: SshKey = {
  id: '5b0e1c9a-1111-4a57-9d5e-3f1b9a1c2d4e',
  type: 'ssh-rsa',
  fingerprint: 'SHA256:80HJ9oPZHBl7kt4hil16Yky/Joo0k+46Uu4iL67tGKE',
  comment: '',
  created_at: '2030-02-03T04:05:06Z',
};

const list = (...items: SshKey[]) => ({ items, next_cursor: null });

describe('Keys', () => {
  let fixture: ComponentFixture<Keys>;
  let http: HttpTestingController;
  let el: HTMLElement;
  let confirm: { ask: ReturnType<typeof vi.fn> };
  let toast: { done: ReturnType<typeof vi.fn>; failed: ReturnType<typeof vi.fn> };

  const $ = <T extends Element = HTMLElement>(selector: string) => el.querySelector<T>(selector);
  const stable = () => fixture.whenStable();
  const field = () => $<HTMLTextAreaElement>('textarea')!;
  const buttons = () => Array.from(el.querySelectorAll<HTMLButtonElement>('button'));
  const button = (name: string) => buttons().find((b) => b.textContent?.trim() === name);
  const addButton = () => button('Add key')!;

  async function paste(text: string): Promise<void> {
    field().value = text;
    field().dispatchEvent(new Event('input'));
    await stable();
  }

  async function submit(): Promise<void> {
    $('form')!.dispatchEvent(new Event('submit', { cancelable: true }));
    await stable();
  }

  beforeEach(async () => {
    confirm = { ask: vi.fn() };
    toast = { done: vi.fn(), failed: vi.fn() };
    TestBed.configureTestingModule({
      providers: [
        provideRouter([]),
        provideHttpClient(),
        provideHttpClientTesting(),
        { provide: Confirm, useValue: confirm },
        { provide: Toast, useValue: toast },
      ],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Keys);
    el = fixture.nativeElement as HTMLElement;
    await stable();
  });

  afterEach(() => http.verify());

  async function showList(...items: SshKey[]): Promise<void> {
    http.expectOne(LIST).flush(list(...items));
    await stable();
  }

  it('explains how to make a key on Linux, macOS and Windows', async () => {
    await showList();
    const tabs = Array.from(el.querySelectorAll('[role=tab]')).map((t) => t.textContent?.trim());
    expect(tabs).toEqual(['Linux', 'macOS', 'Windows']);
    expect(el.textContent).toContain('ssh-keygen -t ed25519 -C "you@lab.org"');
    expect(el.textContent).toContain('cat ~/.ssh/id_ed25519.pub');
  });

  it('labels the field "Public key"', async () => {
    await showList();
    const label = $<HTMLLabelElement>('label[for]');
    expect(label?.textContent?.trim()).toBe('Public key');
    expect(label?.getAttribute('for')).toBe(field().id);
  });

  it('lists the keys with type, fingerprint, comment and date', async () => {
    await showList(ADA_KEY, LAPTOP_KEY);

    const rows = Array.from(el.querySelectorAll('li.key'));
    expect(rows.length).toBe(2);
    expect(rows[0].textContent).toContain('ada@lab.org');
    expect(rows[0].textContent).toContain('ssh-ed25519');
    expect(rows[0].querySelector('code')?.textContent).toBe(ADA_KEY.fingerprint);
    expect(rows[0].querySelector('time')?.getAttribute('datetime')).toBe(ADA_KEY.created_at);
    expect(rows[1].textContent).toContain('No comment');
    // A key is named by its comment, or by its fingerprint without one.
    expect(buttons().map((b) => b.textContent?.trim())).toContain('Delete key ada@lab.org');
    expect(buttons().map((b) => b.textContent?.trim())).toContain(
      `Delete key ${LAPTOP_KEY.fingerprint}`,
    );
  });

  it('names keys with the same comment by their fingerprints', async () => {
    await showList(ADA_KEY, { ...LAPTOP_KEY, comment: 'ada@lab.org' });
    const names = buttons()
      .map((b) => b.textContent?.trim())
      .filter((t) => t?.startsWith('Delete key'));
    expect(names).toEqual([
      `Delete key ${ADA_KEY.fingerprint}`,
      `Delete key ${LAPTOP_KEY.fingerprint}`,
    ]);
  });

  it('says what to do when there are no keys', async () => {
    await showList();
    expect($('[data-testid=no-keys]')?.textContent?.trim()).toBe(
      'No keys yet: add one above to get access to GPUs.',
    );
  });

  it('offers to try again when the list cannot be loaded', async () => {
    http.expectOne(LIST).flush(problem(503, 'service_unavailable', 'identity is down'), {
      status: 503,
      statusText: 'Service Unavailable',
    });
    await stable();
    expect($('[role=alert]')?.textContent).toContain('Could not load your SSH keys');
    button('Try again')!.click();
    await showList(ADA_KEY);
    expect(el.querySelectorAll('li.key').length).toBe(1);
  });

  it("adds a key: POSTs exactly the pasted line, shows ssh-keygen's line, reloads", async () => {
    await showList();
    const auth = TestBed.inject(Auth);
    const refresh = vi.spyOn(auth, 'refresh');

    await paste(`  ${ED25519}\n`);
    expect($('mat-error')).toBeNull();
    addButton().click();
    await stable();

    const req = http.expectOne(ADD);
    expect(req.request.body).toEqual({ public_key: ED25519 });
    expect($('[role=status]')?.textContent).toContain('Adding your key');
    req.flush(ADA_KEY, { status: 201, statusText: 'Created' });
    await stable();

    expect($('[data-testid=added-fingerprint]')?.textContent).toBe(ED25519_KEYGEN);
    expect($('[data-testid=added-key]')?.textContent).toContain(ADA_KEY.fingerprint);
    expect(toast.done).toHaveBeenCalledWith('Key added.');
    expect(field().value).toBe('');

    // The list and the signed-in user (has_ssh_key) as the server now has them.
    http.expectOne(LIST).flush(list(ADA_KEY));
    http.expectOne(ME).flush({ ...USER, has_ssh_key: true });
    await stable();
    expect(el.querySelectorAll('li.key').length).toBe(1);
    expect(refresh).toHaveBeenCalledWith({ ...USER, has_ssh_key: true });
  });

  it("shows the server's fingerprint when its type differs from what was checked", async () => {
    await showList();
    await paste(RSA_3072);
    await submit();
    http.expectOne(ADD).flush({ ...LAPTOP_KEY, type: 'something-else' });
    await stable();
    expect($('[data-testid=added-fingerprint]')?.textContent).toBe(LAPTOP_KEY.fingerprint);
    http.expectOne(LIST).flush(list(LAPTOP_KEY));
    http.expectOne(ME).flush(USER);
  });

  it('never sends a private key, and warns that it must not be pasted anywhere', async () => {
    await showList();
    await paste(PRIVATE_OPENSSH);

    expect($('mat-error')?.textContent).toContain('Never paste it anywhere');
    expect($('[data-testid=private-key-warning]')?.getAttribute('role')).toBe('alert');
    expect(addButton().disabled).toBe(true);
    await submit();
    http.expectNone(ADD);

    button('Clear the field')!.click();
    await stable();
    expect(field().value).toBe('');
    expect($('[data-testid=private-key-warning]')).toBeNull();
  });

  it('says why a pasted key is wrong, under the field, and does not send it', async () => {
    await showList();
    await paste(`${ED25519}\n${RSA_3072}`);

    const error = $('mat-error');
    expect(error?.textContent).toContain('Paste exactly one key, on a single line');
    expect(field().getAttribute('aria-invalid')).toBe('true');
    expect(field().getAttribute('aria-describedby')).toContain(error!.id);
    expect(addButton().disabled).toBe(true);
    await submit();
    http.expectNone(ADD);
  });

  it('asks for a key when Add key is pressed on an empty field', async () => {
    await showList();
    expect(addButton().disabled).toBe(false);
    addButton().click();
    await stable();
    http.expectNone(ADD);
    expect($('mat-error')?.textContent).toContain('Paste your public key');
    expect(document.activeElement).toBe(field());
  });

  it("shows the server's reason for refusing the key under the field (422)", async () => {
    await showList();
    await paste(ED25519);
    await submit();
    http.expectOne(ADD).flush(
      {
        ...problem(422, 'invalid_ssh_key', 'the point is not on the curve'),
        reason: 'malformed',
      },
      { status: 422, statusText: 'Unprocessable Content' },
    );
    await stable();

    expect($('mat-error')?.textContent?.trim()).toBe('The point is not on the curve.');
    expect(field().value).toBe(ED25519);
    expect(toast.done).not.toHaveBeenCalled();

    // A changed key may be fine: the server's words go with the change.
    await paste(RSA_3072);
    expect($('mat-error')).toBeNull();
  });

  it('says in words that the key was added before (409)', async () => {
    await showList(ADA_KEY);
    await paste(ED25519);
    await submit();
    http.expectOne(ADD).flush(problem(409, 'duplicate_ssh_key', 'duplicate'), {
      status: 409,
      statusText: 'Conflict',
    });
    await stable();
    expect($('mat-error')?.textContent).toContain('You have added this key already');
  });

  it('shows other failures near the form', async () => {
    await showList();
    await paste(ED25519);
    await submit();
    http.expectOne(ADD).error(new ProgressEvent('error'));
    await stable();
    expect($('form [role=alert]')?.textContent).toContain(
      'Your key was not added. The gateway could not be reached.',
    );
  });

  describe('deleting', () => {
    it('asks first, then deletes, reloads and refreshes the user', async () => {
      await showList(ADA_KEY, LAPTOP_KEY);
      confirm.ask.mockResolvedValue(true);

      button('Delete key ada@lab.org')!.click();
      await stable();
      expect(confirm.ask).toHaveBeenCalledWith(
        expect.objectContaining({ confirm: 'Delete key', title: 'Delete key ada@lab.org?' }),
      );
      const del = http.expectOne({ method: 'DELETE', url: `/api/v1/me/ssh-keys/${ADA_KEY.id}` });
      del.flush(null, { status: 204, statusText: 'No Content' });
      await stable();

      expect(toast.done).toHaveBeenCalledWith('Key deleted.');
      http.expectOne(LIST).flush(list(LAPTOP_KEY));
      http.expectOne(ME).flush({ ...USER, has_ssh_key: true });
      await stable();
      expect(el.querySelectorAll('li.key').length).toBe(1);
    });

    it('does nothing when the person cancels', async () => {
      await showList(ADA_KEY);
      confirm.ask.mockResolvedValue(false);
      button('Delete key ada@lab.org')!.click();
      await stable();
      http.expectNone({ method: 'DELETE' });
    });

    it('warns when the key is the only one', async () => {
      await showList(ADA_KEY);
      confirm.ask.mockResolvedValue(false);
      button('Delete key ada@lab.org')!.click();
      await stable();
      const { message } = confirm.ask.mock.calls[0][0] as { message: string[] };
      expect(message.join(' ')).toContain('It is your only key');
    });

    it('says when the delete failed, and shows the list as the server has it', async () => {
      await showList(ADA_KEY);
      confirm.ask.mockResolvedValue(true);
      button('Delete key ada@lab.org')!.click();
      await stable();
      http
        .expectOne({ method: 'DELETE' })
        .flush(problem(503, 'service_unavailable', 'identity is down'), {
          status: 503,
          statusText: 'Service Unavailable',
        });
      await stable();
      expect(toast.failed).toHaveBeenCalledWith(
        expect.stringContaining('The key was not deleted. A gpulab service did not answer'),
      );
      http.expectOne(LIST).flush(list(ADA_KEY));
    });
  });
});
