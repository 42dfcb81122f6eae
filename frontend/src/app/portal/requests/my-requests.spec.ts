import { HttpRequest, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import { latestRequest } from '../../admin/users/users.testing';
import type { GpuRequest } from '../../api';
import { Confirm } from '../../shared/confirm';
import { nextRequest, problem } from '../../testing/http.testing';
import { request } from '../../testing/self-service.testing';
import { MyRequests, OPEN_REFRESH_MS } from './my-requests';

const LIST = (req: HttpRequest<unknown>) =>
  req.method === 'GET' && req.url === '/api/v1/me/requests';
const QUEUED = request({ estimated_start_at: '2030-01-01T12:00:00Z', position: 2 });
const DENIED = request({
  id: 'r2',
  status: 'denied',
  position: null,
  reason: 'the course ended',
  created_at: '2029-12-31T10:00:00Z',
});

describe('MyRequests', () => {
  let fixture: ComponentFixture<MyRequests>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const ask = vi.fn<(o: unknown) => Promise<boolean>>();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const row = (id: string) => el.querySelector(`tr[data-request-id="${id}"]`);

  beforeEach(() => {
    ask.mockReset();
    TestBed.configureTestingModule({
      imports: [MyRequests],
      providers: [
        provideRouter([]),
        provideHttpClient(),
        provideHttpClientTesting(),
        { provide: Confirm, useValue: { ask } },
      ],
    });
  });

  /** The page; it asks again every `refreshMs` while a request is open (long: not during a spec). */
  function create(refreshMs = 60_000): void {
    TestBed.overrideProvider(OPEN_REFRESH_MS, { useValue: refreshMs });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(MyRequests);
    el = fixture.nativeElement as HTMLElement;
  }

  afterEach(() => fixture?.destroy());

  async function answer(...items: GpuRequest[]): Promise<void> {
    (await latestRequest(http, LIST)).flush({ items, next_cursor: null });
    await fixture.whenStable();
  }

  it('shows the position and estimated start while queued, and the reason when denied', async () => {
    create();
    await answer(QUEUED, DENIED);
    expect(text(row(QUEUED.id))).toContain('queued');
    expect(text(row(QUEUED.id))).toContain('Position 2, estimated start');
    expect(text(row('r2'))).toContain('Reason: the course ended');
    // Only the open one can be cancelled.
    expect(row(QUEUED.id)?.querySelector('button')).not.toBeNull();
    expect(row('r2')?.querySelector('button')).toBeNull();
  });

  it('asks again while a request is open, and stops once none is', async () => {
    create(30);
    await answer(QUEUED);
    await answer({ ...QUEUED, position: 1 });
    expect(text(row(QUEUED.id))).toContain('Position 1');
    await answer({ ...QUEUED, status: 'granted', position: null, assignment_id: 'a1' });
    expect(text(row(QUEUED.id))).toContain('See it on My GPUs');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(http.match(LIST).filter((r) => !r.cancelled)).toHaveLength(0);
  });

  it('cancels an open request once confirmed', async () => {
    create();
    await answer(QUEUED);
    ask.mockResolvedValueOnce(false);
    row(QUEUED.id)!.querySelector('button')!.click();
    await fixture.whenStable();
    http.expectNone({ method: 'POST' });

    ask.mockResolvedValueOnce(true);
    row(QUEUED.id)!.querySelector('button')!.click();
    const req = await nextRequest(http, {
      method: 'POST',
      url: `/api/v1/me/requests/${QUEUED.id}/cancel`,
    });
    req.flush({ ...QUEUED, status: 'cancelled' });
    await answer({ ...QUEUED, status: 'cancelled', position: null });
    expect(text(row(QUEUED.id))).toContain('cancelled');
  });

  it('says when the request was decided before the cancel arrived', async () => {
    create();
    await answer(QUEUED);
    ask.mockResolvedValueOnce(true);
    row(QUEUED.id)!.querySelector('button')!.click();
    (await nextRequest(http, { method: 'POST' })).flush(
      problem(409, 'request_not_open', 'the request is granted'),
      { status: 409, statusText: 'Conflict' },
    );
    await answer({ ...QUEUED, status: 'granted' });
    expect(text(el.querySelector('[role=alert]'))).toContain('can no longer be cancelled');
  });

  it('says when there are none', async () => {
    create();
    await answer();
    expect(text(el.querySelector('[data-testid=empty]'))).toBe('No requests yet. Request GPUs');
  });
});
