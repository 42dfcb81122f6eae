import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import type { GpuRequest } from '../../api';
import { nextRequest } from '../../testing/http.testing';
import { request } from '../../testing/self-service.testing';
import { settle, typeInto } from '../nodes/nodes.testing';
import { latestRequest } from '../users/users.testing';
import { RequestsInbox, inboxOrder } from './requests-inbox';

const LIST = (req: HttpRequest<unknown>) => req.method === 'GET' && req.url === '/api/v1/requests';
const PENDING = request({
  id: 'p1',
  status: 'pending_approval',
  position: null,
  user_email: 'bob@lab.org',
  note: 'course project',
  created_at: '2030-01-01T08:00:00Z',
});
const QUEUED = request({ id: 'q1', created_at: '2030-01-01T09:00:00Z' });
const GRANTED = request({ id: 'g1', status: 'granted', created_at: '2030-01-01T11:00:00Z' });

describe('inboxOrder', () => {
  it('puts what waits for an admin first, then the queue, newest first within', () => {
    const older = { ...PENDING, id: 'p0', created_at: '2029-12-31T00:00:00Z' };
    expect(inboxOrder([GRANTED, QUEUED, older, PENDING]).map((r) => r.id)).toEqual([
      'p1',
      'p0',
      'q1',
      'g1',
    ]);
  });
});

describe('RequestsInbox', () => {
  let fixture: ComponentFixture<RequestsInbox>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const stable = () => fixture.whenStable();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const button = (name: string, root: ParentNode = document) =>
    Array.from(root.querySelectorAll<HTMLButtonElement>('button')).find((b) => text(b) === name)!;
  const dialog = () => document.querySelector('mat-dialog-container')!;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [RequestsInbox],
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(RequestsInbox);
    el = fixture.nativeElement as HTMLElement;
  });

  afterEach(async () => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  async function answer(...items: GpuRequest[]): Promise<void> {
    (await latestRequest(http, LIST)).flush({ items, next_cursor: null });
    await settle(stable);
  }

  it('lists pending approval first, with approve and deny on those only', async () => {
    await answer(QUEUED, GRANTED, PENDING);
    const rows = Array.from(el.querySelectorAll('tr[data-request-id]'));
    expect(rows.map((r) => r.getAttribute('data-request-id'))).toEqual(['p1', 'q1', 'g1']);
    expect(text(rows[0])).toContain('course project');
    expect(button('Approve the request of bob@lab.org', rows[0])).toBeDefined();
    expect(rows[1].querySelector('button')).toBeNull();
  });

  it('approves', async () => {
    await answer(PENDING);
    button('Approve the request of bob@lab.org').click();
    const req = await nextRequest(http, { method: 'POST', url: '/api/v1/requests/p1/approve' });
    req.flush({ ...PENDING, status: 'granted' });
    await answer({ ...PENDING, status: 'granted' });
    expect(el.querySelector('tr[data-request-id=p1] button')).toBeNull();
  });

  it('denies only with a reason', async () => {
    await answer(PENDING);
    button('Deny the request of bob@lab.org').click();
    await settle(stable);
    expect(text(dialog().querySelector('h2'))).toBe('Deny the request of bob@lab.org?');
    button('Deny request', dialog()).click();
    await settle(stable);
    expect(text(dialog().querySelector('mat-error'))).toBe(
      'Say why, so that they know what to do instead.',
    );
    http.expectNone({ method: 'POST' });

    const reason = dialog().querySelector<HTMLInputElement>('textarea')!;
    expect(text(dialog().querySelector('mat-label'))).toBe('Reason');
    typeInto(reason, ' the course has ended ');
    await settle(stable);
    button('Deny request', dialog()).click();
    const req = await nextRequest(http, { method: 'POST', url: '/api/v1/requests/p1/deny' });
    expect(req.request.body).toEqual({ reason: 'the course has ended' });
    req.flush({ ...PENDING, status: 'denied', reason: 'the course has ended' });
    await answer({ ...PENDING, status: 'denied', reason: 'the course has ended' });
    expect(text(el.querySelector('tr[data-request-id=p1]'))).toContain(
      'Denied: the course has ended',
    );
  });

  it('filters by status on the server', async () => {
    await answer(PENDING);
    el.querySelector<HTMLElement>('mat-select')!.click();
    await settle(stable);
    Array.from(document.querySelectorAll<HTMLElement>('mat-option'))
      .find((o) => text(o) === 'queued')!
      .click();
    const req = await latestRequest(http, (r) => LIST(r) && r.params.get('status') === 'queued');
    req.flush({ items: [], next_cursor: null });
    await settle(stable);
    expect(el.textContent).toContain('No queued requests.');
  });
});
