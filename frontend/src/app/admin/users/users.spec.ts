import { HttpErrorResponse, HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { HarnessLoader } from '@angular/cdk/testing';
import { TestbedHarnessEnvironment } from '@angular/cdk/testing/testbed';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { MatFormFieldHarness } from '@angular/material/form-field/testing';
import { MatSelectHarness } from '@angular/material/select/testing';
import { provideRouter } from '@angular/router';

import type { User, UserList } from '../../api';
import { ADMIN, USER, nextRequest, problem } from '../../testing/http.testing';
import { inviteError } from './invite-form';
import { deliveryText, describeWithFields, nameText } from './user-view';
import { Users } from './users';
import { latestRequest } from './users.testing';

const INVITED: User = {
  id: '3b1f9c2a-3333-4a57-9d5e-3f1b9a1c2d4e',
  email: 'linus@lab.org',
  name: null,
  role: 'user',
  status: 'invited',
  has_ssh_key: false,
  created_at: '2030-01-02T00:00:00Z',
  invite_delivery: {
    state: 'failed',
    detail: 'mailbox unavailable',
    updated_at: '2030-01-02T00:00:05Z',
  },
};
const DISABLED: User = {
  ...USER,
  id: '5e2d1c0b-4444-4a57-9d5e-3f1b9a1c2d4e',
  email: 'bob@lab.org',
  status: 'disabled',
};

const list = (...items: User[]): UserList => ({ items, next_cursor: null });
// The list's query varies (limit, status): match on the path alone.
const LIST = (req: HttpRequest<unknown>) => req.method === 'GET' && req.url === '/api/v1/users';

function httpError(status: number, body: unknown): HttpErrorResponse {
  return new HttpErrorResponse({ status, error: body });
}

describe('user view helpers', () => {
  const now = Date.parse('2030-01-02T00:05:05Z');
  const invited = (
    state: 'pending' | 'sent' | 'retrying' | 'failed',
    detail: string | null = null,
  ) =>
    deliveryText(
      { ...INVITED, invite_delivery: { state, detail, updated_at: '2030-01-02T00:00:05Z' } },
      now,
    );

  it('says where an invite email stands, failed marked', () => {
    expect(invited('pending')).toEqual({ text: 'queued', failed: false });
    expect(invited('sent')).toEqual({ text: 'sent 5 min ago', failed: false });
    expect(invited('retrying', 'connection refused')).toEqual({
      text: 'retrying: connection refused',
      failed: false,
    });
    expect(invited('failed', 'mailbox unavailable')).toEqual({
      text: 'failed: mailbox unavailable',
      failed: true,
    });
    expect(deliveryText({ ...USER, invite_delivery: INVITED.invite_delivery }, now)).toBeNull();
  });

  it('shows a dash until the invite is accepted', () => {
    expect(nameText(INVITED)).toBe('—');
    expect(nameText(USER)).toBe('Ada Lovelace');
  });

  it('says which field the gateway refused', () => {
    const err = httpError(422, {
      ...problem(422, 'invalid_request', 'the request is not valid'),
      errors: [{ loc: ['body', 'email'], msg: 'value is not a valid email address', type: 'x' }],
    });
    expect(describeWithFields(err)).toBe(
      'The request is not valid (email: value is not a valid email address).',
    );
  });

  it('explains an invite of someone who has an account', () => {
    const err = httpError(
      409,
      problem(409, 'user_already_active', 'ada@lab.org already has an account (active)'),
    );
    expect(inviteError(err)).toContain('ada@lab.org already has an account (active).');
    expect(inviteError(err)).toContain('There is no one to invite');
  });
});

describe('Users', () => {
  let fixture: ComponentFixture<Users>;
  let httpTesting: HttpTestingController;
  let loader: HarnessLoader;
  let el: HTMLElement;

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [Users],
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting()],
    });
    httpTesting = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Users);
    el = fixture.nativeElement as HTMLElement;
    loader = TestbedHarnessEnvironment.loader(fixture);
    await answerList(ADMIN, USER, INVITED, DISABLED);
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  async function answerList(...users: User[]): Promise<void> {
    const req = await latestRequest(httpTesting, LIST);
    req.flush(list(...users));
    await fixture.whenStable();
  }

  const row = (email: string) => el.querySelector<HTMLElement>(`tr[data-user="${email}"]`)!;
  const buttons = (root: ParentNode = el) =>
    Array.from(root.querySelectorAll<HTMLButtonElement>('button')).map((b) =>
      b.textContent?.trim(),
    );
  const button = (text: string, root: ParentNode = el) =>
    Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find(
      (b) => b.textContent?.trim() === text,
    )!;
  const select = (label: string) =>
    loader
      .getHarness(MatFormFieldHarness.with({ floatingLabelText: label }))
      .then((field) => field.getControl(MatSelectHarness)) as Promise<MatSelectHarness>;
  const dialog = () => document.querySelector<HTMLElement>('mat-dialog-container');

  it('lists users with their name, key and invite delivery', () => {
    const invited = row('linus@lab.org');
    expect(invited.textContent).toContain('—');
    expect(invited.textContent).toContain('no key yet');
    expect(invited.textContent).toContain('invited');
    const delivery = invited.querySelector('[data-testid=delivery]')!;
    expect(delivery.textContent).toContain('failed: mailbox unavailable');
    expect(delivery.classList).toContain('delivery--failed');
    expect(row('grace@lab.org').textContent).toContain('has a key');
    expect(row('grace@lab.org').textContent).toContain('Grace Hopper');
  });

  it('offers disable to active users, enable to disabled ones, and neither to invited ones', () => {
    const all = buttons();
    expect(all).toContain('Disable ada@lab.org');
    expect(all).toContain('Enable bob@lab.org');
    expect(all).not.toContain('Disable linus@lab.org');
    expect(all).not.toContain('Enable linus@lab.org');
    expect(buttons(row('linus@lab.org'))).toEqual(['Invite linus@lab.org again']);
  });

  it('names no other button like "Send invite" (browser tests find it by that name)', () => {
    const like = buttons().filter((text) => text?.toLowerCase().includes('send invite'));
    expect(like).toEqual(['Send invite']);
  });

  it('sends an invite with the chosen role, says so and reloads', async () => {
    const email = el.querySelector<HTMLInputElement>('app-invite-form input[type=email]')!;
    email.value = 'new@lab.org';
    email.dispatchEvent(new Event('input'));
    await (await select('Role')).clickOptions({ text: 'admin' });
    button('Send invite').click();

    const req = await nextRequest(httpTesting, { method: 'POST', url: '/api/v1/users/invites' });
    expect(req.request.body).toEqual({ email: 'new@lab.org', role: 'admin' });
    req.flush({ ...INVITED, email: 'new@lab.org', role: 'admin', invite_delivery: null });
    await answerList(ADMIN, USER, INVITED, DISABLED);

    expect(document.body.textContent).toContain('Invite sent to new@lab.org.');
    expect(email.value).toBe('');
  });

  it('defaults the invite role to user and refuses an empty email', async () => {
    expect(await (await select('Role')).getValueText()).toBe('user');
    button('Send invite').click();
    await fixture.whenStable();

    httpTesting.expectNone({ method: 'POST' });
    expect(el.querySelector('mat-error')?.textContent).toContain('Enter the email address');
  });

  it('shows the last_admin refusal in words and snaps the role back', async () => {
    const role = await select('Role of grace@lab.org');
    await role.clickOptions({ text: 'user' });

    const req = await nextRequest(httpTesting, { method: 'PATCH' });
    expect(req.request.url).toBe(`/api/v1/users/${ADMIN.id}`);
    expect(req.request.body).toEqual({ role: 'user' });
    req.flush(problem(409, 'last_admin'), { status: 409, statusText: 'Conflict' });
    await answerList(ADMIN, USER, INVITED, DISABLED);

    expect(el.querySelector('[data-testid=user-action-error]')?.textContent).toContain(
      'This is the last active admin',
    );
    expect(await role.getValueText()).toBe('admin');
  });

  it('asks before disabling, and disables only once confirmed', async () => {
    button('Disable ada@lab.org').click();
    await fixture.whenStable();
    expect(dialog()?.textContent).toContain(
      'Their sessions end at once and their active assignments end.',
    );
    button('Cancel', dialog()!).click();
    await fixture.whenStable();
    await new Promise((resolve) => setTimeout(resolve, 20));
    httpTesting.expectNone({ method: 'PATCH' });

    button('Disable ada@lab.org').click();
    await fixture.whenStable();
    button('Disable user', dialog()!).click();

    const req = await nextRequest(httpTesting, { method: 'PATCH' });
    expect(req.request.url).toBe(`/api/v1/users/${USER.id}`);
    expect(req.request.body).toEqual({ status: 'disabled' });
    req.flush({ ...USER, status: 'disabled' });
    await answerList(ADMIN, { ...USER, status: 'disabled' }, INVITED, DISABLED);
    expect(buttons()).toContain('Enable ada@lab.org');
  });

  it('enables a disabled user without asking', async () => {
    button('Enable bob@lab.org').click();
    const req = await nextRequest(httpTesting, { method: 'PATCH' });
    expect(req.request.body).toEqual({ status: 'active' });
    req.flush({ ...DISABLED, status: 'active' });
    await answerList(ADMIN, USER, INVITED, { ...DISABLED, status: 'active' });
  });

  it('filters by status on the server', async () => {
    await (await select('Show')).clickOptions({ text: 'invited' });
    const req = await latestRequest(httpTesting, LIST);
    expect(req.request.params.get('status')).toBe('invited');
    expect(req.request.params.get('limit')).toBe('500');
    req.flush(list());
    await fixture.whenStable();
    expect(el.textContent).toContain('No invited users.');
  });
});
