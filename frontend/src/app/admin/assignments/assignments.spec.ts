import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { HarnessLoader } from '@angular/cdk/testing';
import { TestbedHarnessEnvironment } from '@angular/cdk/testing/testbed';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { MatFormFieldHarness } from '@angular/material/form-field/testing';
import { MatSelectHarness } from '@angular/material/select/testing';

import type { Assignment } from '../../api';
import { ADMIN, nextRequest, problem } from '../../testing/http.testing';
import { latestRequest } from '../users/users.testing';
import { Assignments } from './assignments';
import { ENVIRONMENTS, GPU01, ML, NODES, USERS, assignment, button } from './assignments.testing';

const get = (path: string) => (req: HttpRequest<unknown>) =>
  req.method === 'GET' && req.url === `/api/v1/${path}`;
const LIST = get('assignments');

describe('Assignments', () => {
  let fixture: ComponentFixture<Assignments>;
  let httpTesting: HttpTestingController;
  let loader: HarnessLoader;
  let el: HTMLElement;

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [Assignments],
      providers: [provideHttpClient(), provideHttpClientTesting()],
    });
    httpTesting = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(Assignments);
    el = fixture.nativeElement as HTMLElement;
    loader = TestbedHarnessEnvironment.loader(fixture);
    (await nextRequest(httpTesting, get('users'))).flush({ items: USERS, next_cursor: null });
    (await nextRequest(httpTesting, get('environments'))).flush({
      items: ENVIRONMENTS,
      next_cursor: null,
    });
    (await nextRequest(httpTesting, get('nodes'))).flush({ items: NODES, next_cursor: null });
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  /** Answers the list's next request and hands back its query. */
  async function answerList(...items: Assignment[]): Promise<URLSearchParams> {
    const req = await latestRequest(httpTesting, LIST);
    req.flush({ items, next_cursor: null });
    await fixture.whenStable();
    return new URLSearchParams(req.request.params.toString());
  }

  const filter = async (label: string) =>
    (await loader.getHarness(MatFormFieldHarness.with({ floatingLabelText: label }))).getControl(
      MatSelectHarness,
    ) as Promise<MatSelectHarness>;
  const dialog = () => document.querySelector<HTMLElement>('mat-dialog-container')!;

  it('lists active assignments with names instead of ids', async () => {
    const query = await answerList(assignment());

    expect(query.get('status')).toBe('active');
    expect(query.get('limit')).toBe('500');
    const cells = Array.from(el.querySelectorAll('tr[data-assignment] td')).map((td) =>
      td.textContent?.trim(),
    );
    expect(cells.slice(0, 8)).toEqual([
      'grace@lab.org',
      'ml-lab',
      'gpu-01',
      '0, 1',
      '8',
      '32 GiB',
      'active',
      'applied',
    ]);
    expect(button(el, 'Revoke grace@lab.org on gpu-01')).toBeDefined();
  });

  it('says what to do when nothing matches', async () => {
    await answerList();
    expect(el.textContent).toContain('No assignments match. Create one with "New assignment".');
  });

  it('puts each filter into the query', async () => {
    await answerList(assignment());

    await (await filter('Filter by user')).clickOptions({ text: 'grace@lab.org' });
    expect((await answerList()).get('user_id')).toBe(ADMIN.id);

    await (await filter('Filter by Environment')).clickOptions({ text: 'ml-lab' });
    let query = await answerList();
    expect(query.get('environment_id')).toBe(ML.id);
    expect(query.get('user_id')).toBe(ADMIN.id);

    await (await filter('Filter by node')).clickOptions({ text: 'gpu-01' });
    expect((await answerList()).get('node_id')).toBe(GPU01.id);

    await (await filter('Filter by status')).clickOptions({ text: 'all' });
    query = await answerList();
    expect(query.has('status')).toBe(false);
    expect(query.get('node_id')).toBe(GPU01.id);

    await (await filter('Filter by status')).clickOptions({ text: 'revoked' });
    expect((await answerList()).get('status')).toBe('revoked');

    await (await filter('Filter by user')).clickOptions({ text: 'all users' });
    expect((await answerList()).has('user_id')).toBe(false);
  });

  it('asks before revoking, then revokes and reloads', async () => {
    const a = assignment();
    await answerList(a);

    button(el, 'Revoke grace@lab.org on gpu-01')!.click();
    await fixture.whenStable();
    expect(dialog().textContent).toContain('The agent removes their access at its next heartbeat.');
    button(dialog(), 'Revoke assignment')!.click();

    const req = await nextRequest(httpTesting, {
      method: 'POST',
      url: `/api/v1/assignments/${a.id}/revoke`,
    });
    req.flush({ ...a, status: 'revoked', ended_at: '2030-01-01T11:00:00Z' });
    await answerList();
    expect(document.body.textContent).toContain('Revoked grace@lab.org on gpu-01');
  });

  it('says so when the assignment ended before the revocation', async () => {
    const a = assignment();
    await answerList(a);

    button(el, 'Revoke grace@lab.org on gpu-01')!.click();
    await fixture.whenStable();
    button(dialog(), 'Revoke assignment')!.click();
    (await nextRequest(httpTesting, { method: 'POST' })).flush(
      problem(409, 'assignment_not_active', 'the assignment has expired'),
      { status: 409, statusText: 'Conflict' },
    );
    await answerList({ ...a, status: 'expired' });

    expect(el.querySelector('[data-testid=assignment-action-error]')?.textContent).toContain(
      'This assignment has already ended, so there is nothing to revoke (the assignment has expired).',
    );
    expect(button(el, 'Revoke grace@lab.org on gpu-01')).toBeUndefined();
  });

  it('opens the create form with "New assignment" and closes it with Cancel', async () => {
    await answerList();
    button(el, 'New assignment')!.click();
    await fixture.whenStable();

    expect(el.querySelector('app-assignment-form')).not.toBeNull();
    expect(button(el, 'New assignment')).toBeUndefined();
    // The form counts free GPUs against every active assignment, whatever the filters.
    const active = await nextRequest(
      httpTesting,
      (req) => LIST(req) && !req.params.has('user_id') && req.params.get('status') === 'active',
    );
    active.flush({ items: [], next_cursor: null });

    button(el, 'Cancel')!.click();
    await fixture.whenStable();
    expect(el.querySelector('app-assignment-form')).toBeNull();
    expect(button(el, 'New assignment')).toBeDefined();
    expect(document.activeElement).toBe(button(el, 'New assignment'));
  });
});
