import { HttpErrorResponse, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';

import { settle, typeInto } from '../../admin/nodes/nodes.testing';
import { nextRequest, problem } from '../../testing/http.testing';
import { APPROVAL_OFFER, OFFER, quota, request } from '../../testing/self-service.testing';
import { RequestGpus, submitError } from './request-gpus';

const GROUP = {
  id: 'g1g1g1g1-0000-4000-8000-000000000001',
  name: 'physics',
  description: '',
  member_ids: [],
  created_at: '2030-01-01T00:00:00Z',
};

describe('submitError', () => {
  const err = (status: number, code: string, detail: string) =>
    new HttpErrorResponse({ status, error: problem(status, code, detail) });

  it("shows a quota's detail exactly as the server wrote it", () => {
    const detail = 'your monthly limit of 100 GPU-hours leaves 2.5; this request needs 8';
    expect(submitError(err(409, 'quota_exceeded', detail))).toBe(detail);
  });

  it('explains the codes a person can act on, and the rest in the server’s words', () => {
    expect(submitError(err(403, 'self_service_off', 'x'))).toContain('no longer takes requests');
    expect(submitError(err(422, 'user_has_no_ssh_key', 'x'))).toContain('Add an SSH key first');
    expect(submitError(err(422, 'too_long', 'at most 48 hours in Deep learning'))).toBe(
      'At most 48 hours in Deep learning.',
    );
  });
});

describe('RequestGpus', () => {
  let fixture: ComponentFixture<RequestGpus>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const stable = () => fixture.whenStable();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const field = (label: string) => {
    const ff = Array.from(el.querySelectorAll('mat-form-field')).find(
      (f) => f.querySelector('mat-label')?.textContent?.trim() === label,
    );
    return ff!.querySelector<HTMLInputElement>('input, textarea, mat-select')!;
  };
  /** The facts of a panel, "term description" each. */
  const facts = (root: Element | null) =>
    Array.from(root?.querySelectorAll('dl > div') ?? []).map(
      (pair) => `${text(pair.querySelector('dt'))} ${text(pair.querySelector('dd'))}`,
    );
  const submitButton = () =>
    Array.from(el.querySelectorAll<HTMLButtonElement>('button')).find(
      (b) => text(b) === 'Submit request',
    )!;

  beforeEach(async () => {
    TestBed.configureTestingModule({
      imports: [RequestGpus],
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
    fixture = TestBed.createComponent(RequestGpus);
    el = fixture.nativeElement as HTMLElement;
  });

  afterEach(() => {
    fixture.destroy();
    document.querySelectorAll('.cdk-overlay-container').forEach((node) => node.remove());
  });

  async function load(offers = [OFFER], myQuota = { user: quota(), groups: [] as unknown[] }) {
    (await nextRequest(http, { method: 'GET', url: '/api/v1/me/environments' })).flush({
      items: offers,
    });
    (await nextRequest(http, { method: 'GET', url: '/api/v1/me/quota' })).flush(myQuota);
    (await nextRequest(http, { method: 'GET', url: '/api/v1/me/groups' })).flush({
      items: [GROUP],
      next_cursor: null,
    });
    await settle(stable);
  }

  it('shows what the quota leaves and the queue before anything is sent', async () => {
    await load();
    expect(facts(el.querySelector('[data-testid=quota-left]'))).toEqual([
      'GPUs held now 1 of 4 (3 left)',
      'GPU-hours this month 37.5 of 100 (62.5 left)',
      // The user's 24 hours are tighter than the Environment's 48.
      'Longest request 24 hours',
    ]);
    // The only Environment on offer is chosen already.
    expect(text(el.querySelector('[data-testid=queue]'))).toContain(
      '2 of 8 GPUs free; 1 request waiting for 4 GPUs.',
    );
  });

  it('asks for an estimate for the chosen GPUs and hours, again when they change', async () => {
    await load();
    typeInto(field('Hours') as HTMLInputElement, '4');
    const first = await nextRequest(
      http,
      (r) => r.url === `/api/v1/me/environments/${OFFER.id}/estimate`,
    );
    expect(first.request.params.get('gpus')).toBe('1');
    expect(first.request.params.get('hours')).toBe('4');
    first.flush({ fits_now: true, position: 1, estimated_start_at: null });
    await settle(stable);
    expect(text(el.querySelector('[data-testid=estimate]'))).toBe('This request: starts now');

    typeInto(field('GPUs') as HTMLInputElement, '3');
    const second = await nextRequest(
      http,
      (r) => r.url.endsWith('/estimate') && r.params.get('gpus') === '3',
    );
    second.flush({ fits_now: false, position: 2, estimated_start_at: null });
    await settle(stable);
    expect(text(el.querySelector('[data-testid=estimate]'))).toBe(
      'This request: position 2, start unknown',
    );
  });

  it('checks the fields before sending, the hours against the longest request', async () => {
    await load();
    typeInto(field('GPUs') as HTMLInputElement, '0');
    typeInto(field('Hours') as HTMLInputElement, '30');
    await settle(stable);
    submitButton().click();
    await settle(stable);
    const errors = Array.from(el.querySelectorAll('mat-error')).map(text);
    expect(errors).toEqual(['Ask for at least 1 GPU.', 'At most 24 hours here.']);
    http.expectNone({ method: 'POST', url: '/api/v1/me/requests' });
  });

  it('warns when a quota would refuse the request', async () => {
    await load();
    typeInto(field('GPUs') as HTMLInputElement, '4');
    typeInto(field('Hours') as HTMLInputElement, '2');
    await settle(stable);
    expect(text(el.querySelector('[data-testid=quota-warning]'))).toBe(
      'Your quota lets you hold 3 more GPUs now.',
    );
  });

  it('sends the request and shows that it was granted, with a link to the access', async () => {
    await load();
    typeInto(field('Hours') as HTMLInputElement, '4');
    typeInto(field('Note') as HTMLInputElement, '  thesis runs ');
    await settle(stable);
    submitButton().click();
    const req = await nextRequest(http, { method: 'POST', url: '/api/v1/me/requests' });
    expect(req.request.body).toEqual({
      environment_id: OFFER.id,
      gpus: 1,
      hours: 4,
      note: 'thesis runs',
    });
    req.flush(request({ status: 'granted', position: null, assignment_id: 'a1' }), {
      status: 201,
      statusText: 'Created',
    });
    await settle(stable);
    const result = el.querySelector('[data-testid=request-result]');
    expect(text(result?.querySelector('h2'))).toBe('Granted');
    expect(result?.querySelector('a[href="/assignments/a1"]')?.textContent).toContain(
      'See how to connect on My GPUs',
    );
  });

  it('asks the person to choose when more than one Environment is on offer', async () => {
    await load([OFFER, APPROVAL_OFFER]);
    // Two on offer: nothing is chosen for the person.
    submitButton().click();
    await settle(stable);
    expect(Array.from(el.querySelectorAll('mat-error')).map(text)).toContain(
      'Choose an Environment.',
    );
    http.expectNone({ method: 'POST', url: '/api/v1/me/requests' });
  });

  it('charges the request to a group, and shows the detail of a refused quota verbatim', async () => {
    const groupQuota = quota({ subject_type: 'group', subject_id: GROUP.id, max_gpus: null });
    await load([OFFER], { user: quota(), groups: [groupQuota] });
    field('Group').click();
    await settle(stable);
    Array.from(document.querySelectorAll<HTMLElement>('mat-option'))
      .find((o) => text(o) === 'physics')!
      .click();
    typeInto(field('Hours') as HTMLInputElement, '2');
    await settle(stable);
    expect(text(el.querySelector('[data-testid=quota-left]'))).toContain('Group physics');

    submitButton().click();
    const req = await nextRequest(http, { method: 'POST', url: '/api/v1/me/requests' });
    expect(req.request.body).toMatchObject({ group_id: GROUP.id, hours: 2 });
    const detail = 'group physics: 100 GPU-hours a month, 0.5 left; this request needs 2';
    req.flush(problem(409, 'quota_exceeded', detail), { status: 409, statusText: 'Conflict' });
    await settle(stable);
    expect(text(el.querySelector('[role=alert]'))).toBe(detail);
  });

  it('says so when no Environment takes requests', async () => {
    await load([]);
    expect(text(el.querySelector('[data-testid=no-offers]'))).toContain(
      'No Environment takes requests yet.',
    );
  });
});
