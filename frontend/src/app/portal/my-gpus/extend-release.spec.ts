import { HttpErrorResponse, provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { ComponentFixture, TestBed } from '@angular/core/testing';

import { settle, typeInto } from '../../admin/nodes/nodes.testing';
import { Confirm } from '../../shared/confirm';
import { nextRequest, problem } from '../../testing/http.testing';
import { request } from '../../testing/self-service.testing';
import { ExtendRelease, extendError } from './extend-release';
import { ACTIVE } from './my-gpus.testing';

describe('extendError', () => {
  const err = (status: number, code: string, detail: string) =>
    new HttpErrorResponse({ status, error: problem(status, code, detail) });

  it("shows a quota's detail verbatim, and explains others waiting", () => {
    const detail = 'your monthly limit of 100 GPU-hours leaves 3; 4 more hours on 2 GPUs need 8';
    expect(extendError(err(409, 'quota_exceeded', detail))).toBe(detail);
    expect(extendError(err(409, 'others_waiting', 'x'))).toContain('Others are waiting');
    expect(extendError(err(422, 'too_long', 'at most 48 hours in all'))).toBe(
      'At most 48 hours in all.',
    );
  });
});

describe('ExtendRelease', () => {
  let fixture: ComponentFixture<ExtendRelease>;
  let http: HttpTestingController;
  let el: HTMLElement;
  const ask = vi.fn<(o: unknown) => Promise<boolean>>();
  const stable = () => fixture.whenStable();
  const text = (e: Element | null | undefined) => e?.textContent?.replace(/\s+/g, ' ').trim() ?? '';
  const button = (name: string) =>
    Array.from(el.querySelectorAll<HTMLButtonElement>('button')).find((b) => text(b) === name)!;
  const hours = () => el.querySelector<HTMLInputElement>('input')!;

  function create(focusExtend = false): void {
    fixture = TestBed.createComponent(ExtendRelease);
    fixture.componentRef.setInput('assignment', ACTIVE);
    fixture.componentRef.setInput('focusExtend', focusExtend);
    el = fixture.nativeElement as HTMLElement;
  }

  beforeEach(() => {
    ask.mockReset();
    TestBed.configureTestingModule({
      imports: [ExtendRelease],
      providers: [
        provideHttpClient(),
        provideHttpClientTesting(),
        { provide: Confirm, useValue: { ask } },
      ],
    });
    http = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    fixture.destroy();
    http.verify();
  });

  it('has a labelled hours field, and focuses it when opened from the expiry mail', async () => {
    create(true);
    await settle(stable);
    expect(text(el.querySelector('mat-label'))).toBe('Extra hours');
    expect(document.activeElement).toBe(hours());
  });

  it('extends by the hours given and shows the new end', async () => {
    create();
    await settle(stable);
    const changed = vi.fn();
    fixture.componentInstance.changed.subscribe(changed);
    typeInto(hours(), '4');
    button('Extend').click();
    const req = await nextRequest(http, {
      method: 'POST',
      url: `/api/v1/me/assignments/${ACTIVE.id}/extend`,
    });
    expect(req.request.body).toEqual({ hours: 4 });
    req.flush({ ...ACTIVE, expires_at: '2099-01-08T04:00:00Z' });
    await settle(stable);
    expect(text(el.querySelector('[role=status]'))).toMatch(/^Extended\. It now ends .*2099/);
    expect(changed).toHaveBeenCalled();
  });

  it('says when the extension went to an admin (202 with a request)', async () => {
    create();
    await settle(stable);
    typeInto(hours(), '2');
    button('Extend').click();
    (await nextRequest(http, { method: 'POST' })).flush(
      request({ kind: 'extension', status: 'pending_approval', assignment_id: ACTIVE.id }),
      { status: 202, statusText: 'Accepted' },
    );
    await settle(stable);
    expect(text(el.querySelector('[role=status]'))).toBe(
      'Sent to an admin for approval. See My requests for the answer.',
    );
  });

  it("shows a refusal's detail, and checks the hours first", async () => {
    create();
    await settle(stable);
    expect(hours().value).toBe('1'); // one hour unless changed
    typeInto(hours(), '');
    button('Extend').click();
    await settle(stable);
    expect(text(el.querySelector('mat-error'))).toBe('Enter a whole number of hours, at least 1.');
    http.expectNone({ method: 'POST' });

    typeInto(hours(), '100');
    button('Extend').click();
    const detail = 'your limit of 48 hours per request leaves 20';
    (await nextRequest(http, { method: 'POST' })).flush(problem(409, 'quota_exceeded', detail), {
      status: 409,
      statusText: 'Conflict',
    });
    await settle(stable);
    expect(text(el.querySelector('[role=alert]'))).toBe(detail);
  });

  it('releases only once confirmed', async () => {
    create();
    await settle(stable);
    ask.mockResolvedValueOnce(false);
    button('Release').click();
    await settle(stable);
    http.expectNone({ method: 'POST' });

    ask.mockResolvedValueOnce(true);
    button('Release').click();
    const req = await nextRequest(http, {
      method: 'POST',
      url: `/api/v1/me/assignments/${ACTIVE.id}/release`,
    });
    req.flush({ ...ACTIVE, status: 'released' });
    await settle(stable);
    expect(ask).toHaveBeenLastCalledWith(
      expect.objectContaining({
        title: 'Release the GPUs on gpu-01.lab?',
        confirm: 'Release GPUs',
      }),
    );
  });
});
