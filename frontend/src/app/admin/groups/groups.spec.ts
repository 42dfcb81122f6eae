import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import type { Group } from '../../api';
import { Confirm } from '../../shared/confirm';
import { ADMIN, USER, nextRequest, problem } from '../../testing/http.testing';
import { BOB, settle } from '../nodes/nodes.testing';
import { latestRequest } from '../users/users.testing';
import { groupChange } from './group-form';
import { Groups, membersOf } from './groups';

const PHYSICS: Group = {
  id: 'g1',
  name: 'physics',
  description: 'The physics lab',
  member_ids: [USER.id],
  created_at: '2030-01-01T00:00:00Z',
};
const LIST = (req: HttpRequest<unknown>) => req.method === 'GET' && req.url === '/api/v1/groups';

describe('group helpers', () => {
  it('lists members by email and offers everyone else who is not disabled', () => {
    const { members, candidates } = membersOf(PHYSICS, [
      ADMIN,
      USER,
      { ...BOB, status: 'disabled' },
    ]);
    expect(members).toEqual([{ id: USER.id, email: USER.email }]);
    expect(candidates.map((u) => u.email)).toEqual([ADMIN.email]);
    expect(membersOf({ ...PHYSICS, member_ids: ['gone'] }, []).members).toEqual([
      { id: 'gone', email: 'gone' },
    ]);
  });

  it('sends only what changed', () => {
    expect(groupChange(PHYSICS, ' physics ', 'The physics lab')).toEqual({});
    expect(groupChange(PHYSICS, 'physics-2', '')).toEqual({ name: 'physics-2', description: '' });
  });
});

describe('Groups', () => {
  let fixture: ComponentFixture<Groups>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const ask = vi.fn<(o: unknown) => Promise<boolean>>();
  const stable = () => fixture.whenStable();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const button = (name: string) =>
    Array.from(document.querySelectorAll<HTMLButtonElement>('button')).find(
      (b) => text(b) === name,
    )!;

  beforeEach(async () => {
    ask.mockReset();
    TestBed.configureTestingModule({
      imports: [Groups],
      providers: [
        provideRouter([]),
        provideHttpClient(),
        provideHttpClientTesting(),
        { provide: Confirm, useValue: { ask } },
      ],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Groups);
    el = fixture.nativeElement as HTMLElement;
    (await nextRequest(http, (r) => r.url === '/api/v1/users')).flush({
      items: [ADMIN, USER, BOB],
      next_cursor: null,
    });
    await answer(PHYSICS);
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  async function answer(...items: Group[]): Promise<void> {
    (await latestRequest(http, LIST)).flush({ items, next_cursor: null });
    await settle(stable);
  }

  it('shows each group with its members and controls named after it', () => {
    const card = el.querySelector('[data-group=physics]')!;
    expect(text(card.querySelector('h3'))).toBe('physics');
    expect(text(card)).toContain('The physics lab');
    expect(text(card)).toContain('Members (1)');
    expect(button('Remove ada@lab.org from physics')).toBeDefined();
    expect(button('Edit physics')).toBeDefined();
    expect(text(card.querySelector('mat-label'))).toBe('Add to physics');
  });

  it('adds a member picked from the users', async () => {
    el.querySelector<HTMLElement>('[data-group=physics] mat-select')!.click();
    await settle(stable);
    const options = Array.from(document.querySelectorAll<HTMLElement>('mat-option'));
    expect(options.map(text)).toEqual(['bob@lab.org', 'grace@lab.org']);
    options[0].click();
    await settle(stable);
    button('Add member to physics').click();
    const req = await nextRequest(http, { method: 'POST', url: '/api/v1/groups/g1/members' });
    expect(req.request.body).toEqual({ user_id: BOB.id });
    req.flush(null, { status: 204, statusText: 'No Content' });
    await answer({ ...PHYSICS, member_ids: [USER.id, BOB.id] });
    expect(text(el.querySelector('[data-group=physics]'))).toContain('Members (2)');
  });

  it('removes a member once confirmed', async () => {
    ask.mockResolvedValueOnce(true);
    button('Remove ada@lab.org from physics').click();
    const req = await nextRequest(http, {
      method: 'DELETE',
      url: `/api/v1/groups/g1/members/${USER.id}`,
    });
    req.flush(null, { status: 204, statusText: 'No Content' });
    await answer({ ...PHYSICS, member_ids: [] });
    expect(text(el.querySelector('[data-group=physics]'))).toContain('Nobody yet.');
  });

  it('says why a group in use cannot be deleted (409 group_in_use)', async () => {
    ask.mockResolvedValueOnce(true);
    button('Delete physics').click();
    const req = await nextRequest(http, { method: 'DELETE', url: '/api/v1/groups/g1' });
    req.flush(problem(409, 'group_in_use', 'in use'), { status: 409, statusText: 'Conflict' });
    await answer(PHYSICS);
    expect(text(el.querySelector('[data-testid=group-action-error]'))).toBe(
      'physics: open requests or active assignments are charged to this group, so it cannot be deleted yet.',
    );
  });

  it('creates a group in a dialog', async () => {
    button('New group').click();
    await settle(stable);
    const dialog = document.querySelector('mat-dialog-container')!;
    const name = dialog.querySelector<HTMLInputElement>('input')!;
    name.value = 'chemistry';
    name.dispatchEvent(new Event('input'));
    await settle(stable);
    button('Create group').click();
    const req = await nextRequest(http, { method: 'POST', url: '/api/v1/groups' });
    expect(req.request.body).toEqual({ name: 'chemistry', description: '' });
    req.flush({ ...PHYSICS, id: 'g2', name: 'chemistry', member_ids: [] });
    await answer(PHYSICS, { ...PHYSICS, id: 'g2', name: 'chemistry', member_ids: [] });
    expect(el.querySelector('[data-group=chemistry]')).not.toBeNull();
  });
});
